package org.sparkrlhf.bench;

import java.lang.management.ManagementFactory;
import java.util.Arrays;

/**
 * Median wall time and mean process CPU time of repeated runs after warm-up runs. CPU time
 * (all threads of the process, native ones included) is the steadier figure on a shared machine:
 * it does not count the time other processes hold the cores. It is a mean, not a median, because
 * the process CPU clock advances in 10 ms steps here (JDK 17 on Linux), a quarter of a 9m
 * forward+backward run: a median of single runs moves in steps of 2.5%, the mean over all timed
 * runs by a fraction of that.
 */
final class Timing {
    /** Seconds per run: wall clock (median) and CPU of the whole process (mean). */
    record Seconds(double wall, double cpu) {
    }

    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    private Timing() {
    }

    /**
     * Medians of a and of b (b may be null) run in turns, a then b, after warm-up runs of each
     * (the JIT compiles the Java engine's kernels during the first runs, on threads whose CPU time
     * the process's figure counts), so that both see the same share of a machine whose load
     * changes.
     */
    static Seconds[] interleaved(int warmups, int iterations, Runnable a, Runnable b) {
        for (int i = 0; i < warmups; i++) {
            a.run();
            if (b != null) b.run();
        }
        double[][] wall = new double[2][iterations], cpu = new double[2][iterations];
        for (int i = 0; i < iterations; i++) {
            Runnable[] both = {a, b};
            for (int k = 0; k < 2; k++) {
                if (both[k] == null) continue;
                long c0 = OS.getProcessCpuTime(), t0 = System.nanoTime();
                both[k].run();
                wall[k][i] = (System.nanoTime() - t0) / 1e9;
                cpu[k][i] = (OS.getProcessCpuTime() - c0) / 1e9;
            }
        }
        Seconds first = new Seconds(median(wall[0]), mean(cpu[0]));
        return new Seconds[]{first, b == null ? null : new Seconds(median(wall[1]), mean(cpu[1]))};
    }

    private static double mean(double[] t) {
        return Arrays.stream(t).sum() / t.length;
    }

    private static double median(double[] t) {
        Arrays.sort(t);
        int n = t.length;
        return n % 2 == 1 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    }
}
