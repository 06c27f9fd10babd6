package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.gpuexec.profile.JitClock;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
            settle(runner, inventory, call);
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

    /** A round of calls is quiet when no JVM's JIT compiled for more than this share of it ... */
    static final double QUIET_SHARE = 0.05;
    /** ... each round lasting at least this long ... */
    static final double ROUND_SECONDS = 0.25;
    /** ... and calls are run for a quiet round at most this long. */
    static final double SETTLE_MAX_SECONDS = 30;

    /**
     * Runs rounds of {@code call} until one in which neither the driver's JIT nor any executor's
     * compiled for more than {@link #QUIET_SHARE} of the round, or for at most
     * {@link #SETTLE_MAX_SECONDS} (see {@link JitClock}; the executors' JITs are read by a call to one
     * device of each, after every round). After the models' profiles the JITs still compiled Spark's
     * paths of the calls (and the engine's, in the executors): the embedded GRPO example's forward and
     * generation calls, timed then, came out 1.3x and 1.7x what the run's calls took, and on
     * local-cluster an empty call 27 ms where the run's whole forward calls took 17.
     */
    static void settle(BarrierCallRunner runner, ClusterInventory inventory, Runnable call) {
        Map<String, DeviceSlot> byExecutor = new LinkedHashMap<>();
        for (DeviceSlot d : inventory.devices()) {
            byExecutor.putIfAbsent(d.executorId(), d);
        }
        List<DeviceSlot> one = new ArrayList<>(byExecutor.values());
        List<Integer> none = new ArrayList<>(Collections.nCopies(one.size(), 0));
        RankFunction<Integer, Double> jit = (context, x) -> JitClock.seconds();
        long start = System.nanoTime();
        double[] before = jitSeconds(runner, one, none, jit);
        while ((System.nanoTime() - start) / 1e9 < SETTLE_MAX_SECONDS) {
            long t0 = System.nanoTime();
            do {
                call.run();
            } while ((System.nanoTime() - t0) / 1e9 < ROUND_SECONDS);
            double round = (System.nanoTime() - t0) / 1e9;
            double[] after = jitSeconds(runner, one, none, jit);
            double most = 0;
            for (int i = 0; i < after.length; i++) {
                most = Math.max(most, after[i] - before[i]);
            }
            if (most <= QUIET_SHARE * round) {
                return;
            }
            before = after;
        }
    }

    /** The driver's JIT seconds, then each executor's (an embedded run's executor is the driver's JVM: counted once). */
    private static double[] jitSeconds(BarrierCallRunner runner, List<DeviceSlot> one, List<Integer> none,
                                       RankFunction<Integer, Double> jit) {
        double driver = JitClock.seconds();
        List<RankResult<Double>> r = runner.run("profile-jit", "spark-rlhf: profile: the executors' JIT", one, none, jit);
        double[] out = new double[1 + r.size()];
        out[0] = driver;
        for (int i = 0; i < r.size(); i++) {
            out[i + 1] = r.get(i).executorId().equals("driver") ? driver : r.get(i).value();
        }
        return out;
    }
}
