package org.sparkrlhf.jobs.checkpoint;

import java.util.Map;

/**
 * What a run needs besides the weights and optimizer states to continue exactly where a
 * checkpoint was taken: the iterations done, the position in the prompt stream (epoch and rows
 * consumed in it, under the data order of {@code seed}), the sampling RNG's counter, the KL
 * controller's coefficient, and each model's parameter version.
 */
public record RunState(int iteration, long seed, long dataEpoch, long dataOffset, long rngCounter, double klCoef,
                       Map<String, Long> modelVersions) {
    public RunState {
        modelVersions = Map.copyOf(modelVersions);
        if (iteration < 0 || dataEpoch < 0 || dataOffset < 0 || rngCounter < 0) {
            throw new IllegalArgumentException("negative position in run state: " + iteration + "/" + dataEpoch + "/"
                    + dataOffset + "/" + rngCounter);
        }
    }
}
