package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.ReallocationCall;
import org.sparkrlhf.jobs.executor.ShardSet;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.ModelResidency;
import org.sparkrlhf.planner.realloc.ModelParameters;
import org.sparkrlhf.planner.realloc.Param;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Times the runtime's reallocation path ({@link ModelResidency#reallocate}, the barrier stage of
 * {@link ReallocationCall}) moving a whole model copy from the run's first device to another device of
 * its executor and to a device of another executor. Each pair moves a tiny model and a model of
 * {@link #BIG} dimensions: the tiny one's seconds are the fixed cost of a reallocation (its stage, the
 * plan), and the big one's extra seconds over its extra parameters give the rate. The shards are
 * zeros put into the executors' stores under a role of the profiler's own, removed afterwards.
 */
final class ReallocationProfiler {
    static final String ROLE = "spark-rlhf-profile-realloc";
    static final int REPEATS = 3;
    /** 2 layers of hidden 256 and a 16k vocabulary: 9.9M parameters, 40 MB of fp32 on a CPU executor. */
    static final ModelSpec BIG = ModelSpec.llama("profile-realloc-big", 2, 256, 688, 4, 4, 16384);
    static final ModelSpec TINY = ModelSpec.llama("profile-realloc-tiny", 1, 8, 16, 2, 2, 16);

    /** Fixed seconds and the rates (NaN where the devices have no such pair). */
    record Rates(double overheadSeconds, double intraParamsPerSecond, double interParamsPerSecond) {
    }

    /** A rank's zero shards: parameter name to elements. */
    record Shards(String role, long version, String layout, LinkedHashMap<String, Integer> sizes) implements Serializable {
    }

    private final BarrierCallRunner runner;
    private final ClusterInventory inventory;
    private final ModelResidency residency;
    private long version;

    ReallocationProfiler(BarrierCallRunner runner, ClusterInventory inventory, ClusterSpec cluster) {
        this.runner = runner;
        this.inventory = inventory;
        this.residency = new ModelResidency(runner, cluster);
    }

    /**
     * The rates; {@code emptyCallSeconds} is the fixed cost when no two devices exist (no reallocation
     * then runs, and a stage of one device is what one would cost).
     */
    Rates measure(double emptyCallSeconds) {
        DeviceSlot first = inventory.device(0);
        DeviceSlot sameExecutor = null;
        DeviceSlot otherExecutor = null;
        for (DeviceSlot d : inventory.devices().subList(1, inventory.size())) {
            if (sameExecutor == null && d.executorId().equals(first.executorId())) {
                sameExecutor = d;
            }
            if (otherExecutor == null && !d.executorId().equals(first.executorId())) {
                otherExecutor = d;
            }
        }
        List<Double> fixed = new ArrayList<>();
        double intra = sameExecutor == null ? Double.NaN : rate(first, sameExecutor, fixed);
        double inter = otherExecutor == null ? Double.NaN : rate(first, otherExecutor, fixed);
        double overhead = fixed.isEmpty() ? emptyCallSeconds : median(fixed);
        return new Rates(overhead, intra, inter);
    }

    /** Parameters per second from {@code from} to {@code to}; adds the tiny move's seconds to {@code fixed}. */
    private double rate(DeviceSlot from, DeviceSlot to, List<Double> fixed) {
        double tiny = seconds(TINY, from, to);
        double big = seconds(BIG, from, to);
        long extra = params(BIG) - params(TINY);
        if (!(big > tiny)) {
            throw new IllegalStateException(String.format(java.util.Locale.ROOT, "profile: moving %d parameters from "
                    + "device %d to %d took %.4f s, no longer than %d took (%.4f s): the machine's load swamps the "
                    + "measurement; profile again", params(BIG), from.index(), to.index(), big, params(TINY), tiny));
        }
        fixed.add(tiny);
        return extra / (big - tiny);
    }

    /** The median seconds of moving a whole copy of {@code spec} from one device to another. */
    private double seconds(ModelSpec spec, DeviceSlot from, DeviceSlot to) {
        Placement src = new Placement("profile", ROLE, List.of(from), 1, 1, 1, 1);
        Placement dst = new Placement("profile", ROLE, List.of(to), 1, 1, 1, 1);
        LinkedHashMap<String, Integer> sizes = new LinkedHashMap<>();
        for (Param p : ModelParameters.all(spec)) {
            sizes.put(p.name(), Math.toIntExact(p.elements()));
        }
        double[] s = new double[REPEATS];
        // one discarded move first: the JIT, the connections between the two executors
        for (int i = -1; i < REPEATS; i++) {
            long v = ++version;
            runner.run("profile: put shards", src, List.of(new Shards(ROLE, v, src.key(), sizes)), (context, in) -> {
                LinkedHashMap<String, float[]> t = new LinkedHashMap<>();
                in.sizes().forEach((name, n) -> t.put(name, new float[n]));
                ModelStore.get().put(new ModelStore.Key(in.role(), in.version(), in.layout(), context.rank()),
                        new ShardSet(t));
                return true;
            });
            double t = residency.reallocate(ROLE, v, src, dst, spec, null, ReallocationCall.Build.TENSORS, null).seconds();
            if (i >= 0) {
                s[i] = t;
            }
            drop(List.of(from, to));
        }
        Arrays.sort(s);
        return s[REPEATS / 2];
    }

    private void drop(List<DeviceSlot> devices) {
        runner.run("profile-drop", "spark-rlhf: profile: drop the moved shards", devices,
                new ArrayList<>(Collections.nCopies(devices.size(), ROLE)),
                (context, role) -> ModelStore.get().dropRoles(List.of(role)));
    }

    static long params(ModelSpec spec) {
        long n = 0;
        for (Param p : ModelParameters.all(spec)) {
            n += p.elements();
        }
        return n;
    }

    private static double median(List<Double> v) {
        double[] s = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return s[s.length / 2];
    }
}
