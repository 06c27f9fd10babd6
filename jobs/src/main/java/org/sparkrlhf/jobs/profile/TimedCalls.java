package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.gpuexec.profile.JitClock;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/** Real model function calls timed as a run pays them, for the profiler's calibrations. */
final class TimedCalls {
    private TimedCalls() {
    }

    /**
     * The median wall time of {@code calls} calls of {@code fn} over {@code slices} on {@code all},
     * after {@code warmUp} untimed ones; the model the calls loaded under {@code all}'s role is dropped
     * from every device afterwards.
     */
    static <I extends Serializable, R extends Serializable> double median(BarrierCallRunner runner, ClusterInventory inventory,
                                                                          Placement all, List<I> slices, RankFunction<I, R> fn,
                                                                          String what, int warmUp, int calls) {
        double[] s = new double[calls];
        Runnable call = () -> runner.run("spark-rlhf: profile: " + what, all, slices, fn);
        try {
            for (int i = 0; i < warmUp; i++) {
                call.run();
            }
            settle(call);
            for (int i = 0; i < calls; i++) {
                long t0 = System.nanoTime();
                call.run();
                s[i] = (System.nanoTime() - t0) / 1e9;
            }
        } finally {
            String role = all.role();
            runner.run("profile-drop", "spark-rlhf: profile: drop the model of " + what, inventory.devices(),
                    new ArrayList<>(Collections.nCopies(inventory.size(), role)),
                    (context, r) -> ModelStore.get().dropRoles(List.of(r)));
        }
        Arrays.sort(s);
        return s[calls / 2];
    }

    /** A round of calls is quiet when the JIT compiled for at most this share of it ... */
    static final double QUIET_SHARE = 0.05;
    /** ... each round lasting at least this long ... */
    static final double ROUND_SECONDS = 0.25;
    /** ... and calls are run for a quiet round at most this long. */
    static final double SETTLE_MAX_SECONDS = 30;

    /**
     * Runs rounds of {@code call} until one in which this JVM's JIT compiled for at most
     * {@link #QUIET_SHARE} of the round, or for at most {@link #SETTLE_MAX_SECONDS} (see
     * {@link JitClock}): after the models' profiles the JIT still compiled Spark's paths of the calls
     * (and, embedded, the executors' and the engine's), and the embedded GRPO example's forward and
     * generation calls, timed then, came out 1.3x and 1.7x what the run's calls took. On a cluster this
     * is the driver's JIT only; the executors' is settled by their own profile's warm-up.
     */
    static void settle(Runnable call) {
        long start = System.nanoTime();
        while ((System.nanoTime() - start) / 1e9 < SETTLE_MAX_SECONDS) {
            double jit0 = JitClock.seconds();
            long t0 = System.nanoTime();
            do {
                call.run();
            } while ((System.nanoTime() - t0) / 1e9 < ROUND_SECONDS);
            if (JitClock.seconds() - jit0 <= QUIET_SHARE * (System.nanoTime() - t0) / 1e9) {
                return;
            }
        }
    }
}
