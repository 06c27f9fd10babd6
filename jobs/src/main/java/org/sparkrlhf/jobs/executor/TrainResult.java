package org.sparkrlhf.jobs.executor;

/** What every train call's rank reports: the loss (summed over ranks), the last step's gradient norm, the new version. */
public interface TrainResult {
    double loss();

    float gradNorm();

    long version();
}
