package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.Serializable;

/**
 * A named loss of the train executor function: what data-parallel rank r of a train call gets (its
 * rows of the call's input keys and its mini-batches, {@link RankRows}, with the loss's settings)
 * and the executor function that runs the optimizer steps on it.
 *
 * @param <S> a rank's input
 * @param <R> a rank's result
 */
public record TrainLoss<S extends Serializable, R extends Serializable & TrainResult>(String name, Slices<S> slices,
                                                                                      RankFunction<S, R> function) {
    /** Rank r of dp's input, whose rows are {@code rows} of the batch's {@code packed_input_ids}. */
    @FunctionalInterface
    public interface Slices<S> {
        S slice(RunContext run, ModelCall call, Keys keys, int dp, int r, RankRows rows);
    }
}
