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
import java.util.function.DoubleSupplier;

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

    /**
     * Runs rounds of {@code call} until one in which neither the driver's JIT nor any executor's
     * compiled for more than {@link JitClock#QUIET_SHARE} of the round, or for at most
     * {@link JitClock#SETTLE_MAX_SECONDS} ({@link JitClock#settle}; the executors' JITs are read by a
     * call to one device of each, after every round). After the models' profiles the JITs still
     * compiled Spark's paths of the calls (and the engine's, in the executors): the embedded GRPO
     * example's forward and generation calls, timed then, came out 1.3x and 1.7x what the run's calls
     * took, and on local-cluster an empty call 27 ms where the run's whole forward calls took 17.
     */
    static void settle(BarrierCallRunner runner, ClusterInventory inventory, Runnable call) {
        Map<String, DeviceSlot> byExecutor = new LinkedHashMap<>();
        for (DeviceSlot d : inventory.devices()) {
            byExecutor.putIfAbsent(d.executorId(), d);
        }
        List<DeviceSlot> one = new ArrayList<>(byExecutor.values());
        List<Integer> none = new ArrayList<>(Collections.nCopies(one.size(), 0));
        RankFunction<Integer, Double> jit = (context, x) -> JitClock.seconds();
        double[][] last = {new double[0]};
        // the most any JVM compiled since the previous reading (the first reading: none)
        DoubleSupplier compiledSince = () -> {
            double[] now = jitSeconds(runner, one, none, jit);
            double most = 0;
            for (int i = 0; i < last[0].length; i++) {
                most = Math.max(most, now[i] - last[0][i]);
            }
            last[0] = now;
            return most;
        };
        JitClock.settle(call, compiledSince, busy -> busy);
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
