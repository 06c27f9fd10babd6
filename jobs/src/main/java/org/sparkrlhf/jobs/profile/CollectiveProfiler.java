package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Times all-reduces through the runtime's communicator (the one a call's ranks get: gradients of
 * data-parallel replicas, tensor-parallel partial sums) between two devices of one executor and
 * between devices of two executors, inside the ranks (the stage's launch is the per-call overhead,
 * measured apart). An all-reduce of one float is the latency; of {@link #BIG} floats, its extra seconds
 * give the bandwidth: over two ranks a ring all-reduce moves the buffer once through each rank's link,
 * as the planner's {@code CommModel} counts it ({@code 2 (n - 1) / n} of the bytes).
 */
final class CollectiveProfiler {
    /** 4 MB of fp32: the gradients of a 1M-parameter model. */
    static final int BIG = 1 << 20;
    static final int REPEATS = 9;
    static final int WARM_UP = 10;

    /** Seconds of a one-float all-reduce over two devices and bytes/s beyond it; NaN where there is no such pair. */
    record Link(double latencySeconds, double bytesPerSecond) {
        static final Link NONE = new Link(Double.NaN, Double.NaN);
    }

    record Sizes(int small, int big, int repeats) implements Serializable {
    }

    private CollectiveProfiler() {
    }

    /** {@code [inside one executor, between two]}. */
    static Link[] measure(BarrierCallRunner runner, ClusterInventory inventory) {
        DeviceSlot first = inventory.device(0);
        Link intra = Link.NONE;
        Link inter = Link.NONE;
        for (DeviceSlot d : inventory.devices().subList(1, inventory.size())) {
            boolean same = d.executorId().equals(first.executorId());
            if (same && Double.isNaN(intra.latencySeconds())) {
                intra = link(runner, List.of(first, d));
            } else if (!same && Double.isNaN(inter.latencySeconds())) {
                inter = link(runner, List.of(first, d));
            }
        }
        return new Link[]{intra, inter};
    }

    private static Link link(BarrierCallRunner runner, List<DeviceSlot> pair) {
        List<RankResult<double[]>> r = runner.run("profile-allreduce", "spark-rlhf: profile all-reduces", pair,
                new ArrayList<>(Collections.nCopies(pair.size(), new Sizes(1, BIG, REPEATS))),
                (context, in) -> {
                    Communicator c = context.communicator();
                    return new double[]{time(c, in.small(), in.repeats()), time(c, in.big(), in.repeats())};
                });
        double small = 0;
        double big = 0;
        for (RankResult<double[]> x : r) {
            small = Math.max(small, x.value()[0]);
            big = Math.max(big, x.value()[1]);
        }
        if (!(big > small)) {
            throw new IllegalStateException(String.format(java.util.Locale.ROOT, "profile: an all-reduce of %d floats "
                    + "took %.5f s, no longer than of one (%.5f s): the machine's load swamps it; profile again", BIG, big,
                    small));
        }
        return new Link(small, 4.0 * (BIG - 1) / (big - small));
    }

    /**
     * The median seconds of an all-reduce of {@code n} floats, after {@link #WARM_UP} untimed ones: after
     * two, the embedded PPO example's link came out at 2.2e8 bytes/s, and its run's gradient
     * all-reduces moved 2.4-5e8 (the communicator's copy loops not yet compiled).
     */
    private static double time(Communicator c, int n, int repeats) {
        float[] buf = new float[n];
        for (int i = 0; i < WARM_UP; i++) {
            c.allReduceSum(buf);
        }
        double[] s = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long t0 = System.nanoTime();
            c.allReduceSum(buf);
            s[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(s);
        return s[repeats / 2];
    }
}
