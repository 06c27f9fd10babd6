package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.Serializable;

/**
 * A named loss of the train executor function, on the driver: what each data-parallel rank of a
 * train call gets (its rows of the call's input keys and the loss's settings), the executor function
 * that runs the optimizer steps on it, and the new version a rank's result reports.
 *
 * @param <S> a rank's input
 * @param <R> a rank's result
 */
public interface TrainLoss<S extends Serializable, R extends Serializable> {
    /** The loss's name (the metrics and progress line use it). */
    String name();

    /** The input of data-parallel rank {@code r} of {@code dp}, whose rows are [from, to) of the batch. */
    S slice(RunContext run, ModelCall call, Keys keys, int dp, int r, int from, int to);

    /** How many rows the call trains on (the batch's rows of its first input key). */
    int rows(Keys keys, ModelCall call);

    RankFunction<S, R> function();

    /** The model's version after the steps, as rank 0 reports it. */
    long version(R result);
}
