package org.sparkrlhf.datasets.tables;

import java.time.Instant;
import java.util.List;
import java.util.Objects;

/**
 * The execution plan an iteration ran with: the planner's plan JSON, and for each model function
 * call the planner's estimated and the measured seconds.
 *
 * @param estimatedSeconds the simulator's estimate for the whole iteration
 * @param measuredSeconds  the iteration's wall-clock seconds, null until measured
 */
public record PlanRow(String planJson, List<CallTiming> calls, double estimatedSeconds, Double measuredSeconds,
                      Instant time) {
    public PlanRow {
        Objects.requireNonNull(planJson, "planJson");
        Objects.requireNonNull(time, "time");
        calls = List.copyOf(calls);
    }

    /**
     * One call (e.g. "actor_gen") of the plan; measuredSeconds is null when the call did not run.
     * estimatedStart and estimatedEnd place the call in the simulator's schedule of an iteration, in
     * seconds from the iteration's start (the runtime's {@code timeline/<call>/start|end} metrics are
     * the measured counterpart); null where the planner has no estimate.
     */
    public record CallTiming(String call, double estimatedSeconds, Double measuredSeconds, Double estimatedStart,
                             Double estimatedEnd) {
        public CallTiming {
            Objects.requireNonNull(call, "call");
        }
    }
}
