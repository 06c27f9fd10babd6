package org.sparkrlhf.gpuexec.backend.cpu;

import java.util.Locale;

/**
 * Which kernels a {@link CpuBackend} runs. {@link #FAST} computes matrix products with OpenBLAS
 * (and the other ops with the fast Java kernels); {@link #REFERENCE} is the pure-Java path that
 * the tests compare the fast kernels against. Runs use {@link #defaultKernels()}: the system
 * property {@value #PROPERTY} ({@code fast} or {@code reference}), else FAST where OpenBLAS loads
 * and REFERENCE elsewhere.
 */
public enum CpuKernels {
    FAST, REFERENCE;

    /** The system property that picks the kernels of CPU backends made without an explicit choice. */
    public static final String PROPERTY = "sparkrlhf.cpu.kernels";

    public static CpuKernels defaultKernels() {
        String v = System.getProperty(PROPERTY);
        if (v == null || v.isBlank()) return OpenBlas.available() ? FAST : REFERENCE;
        return switch (v.trim().toLowerCase(Locale.ROOT)) {
            case "fast" -> FAST;
            case "reference" -> REFERENCE;
            default -> throw new IllegalArgumentException("-D" + PROPERTY + "=" + v + ": expected fast or reference");
        };
    }

    /** Throws when these kernels cannot run on this machine, saying why. */
    void requireAvailable() {
        if (this == FAST && !OpenBlas.available()) {
            throw new IllegalStateException("the fast CPU kernels need OpenBLAS, which did not load here ("
                    + OpenBlas.unavailableReason() + "); use -D" + PROPERTY + "=reference");
        }
    }
}
