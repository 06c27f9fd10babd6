package org.sparkrlhf.planner.sim;

import java.util.List;

/**
 * The simulated run of a plan: time per iteration (the steady-state period over
 * {@link Simulator#ITERATIONS} unrolled iterations), per call its duration and the peak memory of its devices
 * while it runs, per call the reallocation before it (0 when none), and the timeline. When the plan
 * does not fit in memory, {@code iterationSeconds} is infinite and {@code infeasibleReason} says where.
 */
public record SimResult(double iterationSeconds, double[] callSeconds, double[] callMemoryBytes,
                        double[] reallocSeconds, List<TimelineEvent> timeline, String infeasibleReason) {
    public boolean feasible() {
        return infeasibleReason == null;
    }
}
