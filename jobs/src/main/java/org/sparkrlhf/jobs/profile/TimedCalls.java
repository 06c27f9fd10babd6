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
import java.util.stream.Collectors;

/** Real model function calls timed as a run pays them, for the profiler's calibrations. */
final class TimedCalls {
    private TimedCalls() {
    }

    /** A real call the profiler times: {@code what} it is, and the roles its models are held under (dropped after). */
    record Call(List<String> roles, String what, Runnable run) {
    }

    /** Calls of {@code fn} over {@code slices} on {@code all}, holding their models under {@code all}'s role. */
    static <I extends Serializable, R extends Serializable> Call of(BarrierCallRunner runner, Placement all, List<I> slices,
                                                                    RankFunction<I, R> fn, String what) {
        return new Call(List.of(all.role()), what, () -> runner.run("spark-rlhf: profile: " + what, all, slices, fn));
    }

    /**
     * Each call's median wall time over {@code repeats} rounds (each call once a round, one after the
     * other, as an iteration runs a run's calls), after {@code warmUp} untimed rounds and the JITs'
     * settling over further rounds ({@link #settle}: rounds of all the calls compile their paths
     * together, so that the settling's time limit bounds them all). The models the calls loaded are
     * dropped from every device afterwards.
     */
    static double[] medians(BarrierCallRunner runner, ClusterInventory inventory, List<Call> calls, int warmUp,
                            int repeats) {
        double[][] s = new double[calls.size()][repeats];
        Runnable round = () -> calls.forEach(c -> c.run().run());
        try {
            for (int i = 0; i < warmUp; i++) {
                round.run();
            }
            settle(runner, inventory, round);
            for (int i = 0; i < repeats; i++) {
                for (int j = 0; j < calls.size(); j++) {
                    long t0 = System.nanoTime();
                    calls.get(j).run().run();
                    s[j][i] = (System.nanoTime() - t0) / 1e9;
                }
            }
        } finally {
            List<String> roles = calls.stream().flatMap(c -> c.roles().stream()).distinct().toList();
            runner.run("profile-drop", "spark-rlhf: profile: drop the models of " + calls.stream().map(Call::what)
                            .collect(Collectors.joining(", ")), inventory.devices(),
                    new ArrayList<>(Collections.nCopies(inventory.size(), new ArrayList<>(roles))),
                    (context, r) -> ModelStore.get().dropRoles(r));
        }
        double[] medians = new double[calls.size()];
        for (int j = 0; j < calls.size(); j++) {
            Arrays.sort(s[j]);
            medians[j] = s[j][repeats / 2];
        }
        return medians;
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
