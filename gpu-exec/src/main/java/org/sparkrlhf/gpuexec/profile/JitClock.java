package org.sparkrlhf.gpuexec.profile;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;

/**
 * The seconds this JVM's JIT has spent compiling, to tell the profiler's timings taken while it
 * compiled beside them. The JIT compiles on the same cores as the passes and calls being timed, and
 * after a JVM's start it compiles for a long while: on the embedded GRPO example (two cores) the
 * JIT compiled for about 45 s of the profile's first 55 s of uptime (Spark's scheduling and SQL
 * paths, Janino, the engine's kernels), and the passes timed then came out 1.3-1.5x what the run's
 * calls took later, once it had settled.
 */
public final class JitClock {
    private static final CompilationMXBean JIT = ManagementFactory.getCompilationMXBean();

    private JitClock() {
    }

    /** The JIT's compiling seconds so far (summed over its threads); 0 when the JVM does not count them. */
    public static double seconds() {
        return JIT != null && JIT.isCompilationTimeMonitoringSupported() ? JIT.getTotalCompilationTime() / 1e3 : 0;
    }
}
