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
    /**
     * Seconds per run: wall clock (median) and CPU of the whole process (mean); and the JIT's
     * compiling seconds while the timed runs of both engines went on (see {@link #interleaved}).
     */
    record Seconds(double wall, double cpu, double jitDuringTimed) {
    }

    /** Warm-up runs go on, past the asked-for number, until one compiles no more than this (seconds)... */
    static final double JIT_QUIET_SECONDS = 0.005;
    /** ... and at most this many times the asked-for number. */
    static final int MAX_WARMUP_FACTOR = 4;

    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    private static final java.lang.management.CompilationMXBean JIT = ManagementFactory.getCompilationMXBean();

    private Timing() {
    }

    /**
     * Medians of a and of b (b may be null) run in turns, a then b, after warm-up runs of each, so
     * that both see the same share of a machine whose load changes. The JIT compiles the Java
     * engine's kernels during the first runs, in the background, on threads whose CPU time the
     * process's figure counts, and in whichever engine's run it happens to fall: on the 9m model at
     * one thread a forward+backward run cost the process up to half again its calling thread's CPU
     * time while C2 still compiled the backward's kernels. So warm-ups go on past {@code warmups}
     * until a round of them compiles for at most {@link #JIT_QUIET_SECONDS} (up to
     * {@link #MAX_WARMUP_FACTOR} times as many), and the JIT's seconds during the timed runs are
     * reported beside the figures: steady-state throughput, the JIT's one-off cost apart.
     */
    static Seconds[] interleaved(int warmups, int iterations, Runnable a, Runnable b) {
        for (int i = 0; i < warmups * MAX_WARMUP_FACTOR; i++) {
            long jit0 = JIT.getTotalCompilationTime();
            a.run();
            if (b != null) b.run();
            if (i + 1 >= warmups && (JIT.getTotalCompilationTime() - jit0) / 1e3 <= JIT_QUIET_SECONDS) {
                break;
            }
        }
        long jitStart = JIT.getTotalCompilationTime();
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
        double jit = (JIT.getTotalCompilationTime() - jitStart) / 1e3;
        Seconds first = new Seconds(median(wall[0]), mean(cpu[0]), jit);
        return new Seconds[]{first, b == null ? null : new Seconds(median(wall[1]), mean(cpu[1]), jit)};
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
