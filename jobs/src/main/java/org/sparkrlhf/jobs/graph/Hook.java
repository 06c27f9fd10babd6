package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.planner.graph.DriverHook;

/**
 * A driver-side step of the graph (reward function, KL shaping and GAE, group-normalised or
 * leave-one-out advantages, ...): reads the hook's input keys and writes its output keys.
 */
@FunctionalInterface
public interface Hook {
    void run(RunContext run, DriverHook hook, Keys keys);
}
