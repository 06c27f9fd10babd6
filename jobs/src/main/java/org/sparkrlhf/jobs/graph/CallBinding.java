package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.jobs.plan.Placement;

/**
 * The executor function a model call of the graph runs: it reads the call's input keys from the
 * batch, runs one barrier stage on the call's placement, and writes the call's output keys (and its
 * result, for a train call). Kinds: generate, forward (log-probs, values, scores), train with a
 * named loss.
 */
@FunctionalInterface
public interface CallBinding {
    void run(RunContext run, ModelCall call, Placement at, Keys keys);
}
