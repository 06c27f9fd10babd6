package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;

import java.util.Optional;

/**
 * The run's sampling seeds: a pure function of the run's seed and the iteration, so a resumed run
 * samples what an uninterrupted one would (a checkpoint's RNG counter is its iteration).
 */
public final class Seeds {
    private Seeds() {
    }

    /** The sampling seed of an iteration. */
    public static long sample(long seed, int iteration) {
        return seed * 0x9E3779B97F4A7C15L + iteration;
    }

    /** The seed of held-out sampling: the same at every evaluation, and no iteration's. */
    public static long eval(long seed) {
        return sample(seed, -1);
    }

    /** A checkpoint's RNG counter must be its iteration; anything else is an error. */
    public static void checkCounter(Optional<RunCheckpoints.Checkpoint> resumed) {
        resumed.ifPresent(c -> {
            if (c.state().rngCounter() != c.state().iteration()) {
                throw new IllegalStateException(c.dir() + ": a checkpoint's RNG counter is its iteration, got "
                        + c.state().rngCounter() + " at iteration " + c.state().iteration());
            }
        });
    }
}
