package org.sparkrlhf.gpuexec.profile;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.function.DoubleSupplier;
import java.util.function.IntUnaryOperator;

/**
 * The seconds this JVM's JIT has spent compiling, and the profiler's rule for waiting until it has
 * settled ({@link #settle}). The JIT compiles on the same cores as the passes and calls being timed,
 * and after a JVM's start it compiles for a long while: on the embedded GRPO example (two cores) the
 * JIT compiled for about 45 s of the profile's first 55 s of uptime (Spark's scheduling and SQL
 * paths, Janino, the engine's kernels), and the passes timed then came out 1.3-1.5x what the run's
 * calls took later, once it had settled.
 */
public final class JitClock {
    /** A round is quiet when the JIT compiled for at most this share of it ... */
    public static final double QUIET_SHARE = 0.05;
    /** ... each round lasting at least this long ... */
    public static final double ROUND_SECONDS = 0.25;
    /** ... and rounds run for a quiet one at most this long. */
    public static final double SETTLE_MAX_SECONDS = 30;

    private static final CompilationMXBean JIT = ManagementFactory.getCompilationMXBean();

    private JitClock() {
    }

    /** The JIT's compiling seconds so far (summed over its threads); 0 when the JVM does not count them. */
    public static double seconds() {
        return JIT != null && JIT.isCompilationTimeMonitoringSupported() ? JIT.getTotalCompilationTime() / 1e3 : 0;
    }

    /**
     * Runs rounds of {@code pass} (each at least {@link #ROUND_SECONDS}) until one in which the JIT
     * compiled for at most {@link #QUIET_SHARE} of the round, or for at most {@link #SETTLE_MAX_SECONDS}.
     *
     * @param compiledSince the seconds compiled since its previous call, by the JVMs watched (the most of
     *                      them); called once before the first round, then after each
     * @param agree         the devices' agreement on going on, given 1 (go on) or 0: the largest of their
     *                      flags when several devices settle in step, so that they leave together
     */
    public static void settle(Runnable pass, DoubleSupplier compiledSince, IntUnaryOperator agree) {
        long start = System.nanoTime();
        compiledSince.getAsDouble();
        while (true) {
            long t0 = System.nanoTime();
            do {
                pass.run();
            } while ((System.nanoTime() - t0) / 1e9 < ROUND_SECONDS);
            double round = (System.nanoTime() - t0) / 1e9;
            boolean busy = compiledSince.getAsDouble() > QUIET_SHARE * round;
            boolean waited = (System.nanoTime() - start) / 1e9 >= SETTLE_MAX_SECONDS;
            if (agree.applyAsInt(busy && !waited ? 1 : 0) == 0) {
                return;
            }
        }
    }

    /** {@link #seconds()} as the seconds compiled since the previous call (the first call: since the JVM started). */
    public static DoubleSupplier sinceLast() {
        double[] last = {0};
        return () -> {
            double now = seconds();
            double d = now - last[0];
            last[0] = now;
            return d;
        };
    }
}
