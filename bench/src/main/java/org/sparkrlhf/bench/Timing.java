package org.sparkrlhf.bench;

import java.lang.management.ManagementFactory;
import java.util.Arrays;

/**
 * Median wall time and median process CPU time of repeated runs after a warm-up run. CPU time
 * (all threads of the process, native ones included) is the steadier figure on a shared machine:
 * it does not count the time other processes hold the cores.
 */
final class Timing {
    /** Seconds per run: wall clock and CPU of the whole process. */
    record Seconds(double wall, double cpu) {
    }

    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    private Timing() {
    }

    static Seconds median(int iterations, Runnable body) {
        body.run();
        double[] wall = new double[iterations], cpu = new double[iterations];
        for (int i = 0; i < iterations; i++) {
            long c0 = OS.getProcessCpuTime(), t0 = System.nanoTime();
            body.run();
            wall[i] = (System.nanoTime() - t0) / 1e9;
            cpu[i] = (OS.getProcessCpuTime() - c0) / 1e9;
        }
        return new Seconds(median(wall), median(cpu));
    }

    private static double median(double[] t) {
        Arrays.sort(t);
        int n = t.length;
        return n % 2 == 1 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    }
}
