package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.executor.RankContext;

/**
 * How a rank cuts its rows into the plan's micro-batches: the placement's count (1 for a call run
 * without one), at most one per unit (a row, or a preference pair), as equal as integer division
 * makes them, in order. Micro-batches bound a call's activation memory and let pipeline stages
 * overlap; every row's result is the one it gets in a single batch.
 */
final class MicroBatches {
    private MicroBatches() {
    }

    /** The first unit of each of the call's micro-batches over {@code units}, and {@code units} last. */
    static int[] starts(RankContext context, int units) {
        int microBatches = context.placement() == null ? 1 : context.placement().microBatches();
        int parts = Math.max(1, Math.min(microBatches, units));
        int[] starts = new int[parts + 1];
        for (int j = 0; j <= parts; j++) {
            starts[j] = j * units / parts;
        }
        return starts;
    }
}
