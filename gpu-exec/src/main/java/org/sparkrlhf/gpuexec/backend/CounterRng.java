package org.sparkrlhf.gpuexec.backend;

/**
 * The counter-based random numbers of sampling: a uniform draw is a pure function of
 * (seed, sequence id, step), so that a sequence gets the same tokens whatever batch it is in and
 * whichever backend runs it. Every backend must compute exactly this (64-bit unsigned arithmetic,
 * wrap-around multiplication):
 *
 * <pre>
 *   x = splitmix64(seed + 0x9E3779B97F4A7C15 * (seqId + 1))
 *   x = splitmix64(x ^ (0xD1B54A32D192ED03 * (step + 1)))
 *   u = (x >>> 40) * 2^-24            // a float in [0, 1) with 24 random bits
 *   splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9;
 *                  z = (z ^ (z >>> 27)) * 0x94D049BB133111EB; return z ^ (z >>> 31)
 * </pre>
 */
public final class CounterRng {
    private CounterRng() {
    }

    public static long splitmix64(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** A uniform float in [0, 1) for draw {@code step} of sequence {@code seqId} under {@code seed}. */
    public static float uniform(long seed, int seqId, int step) {
        long x = splitmix64(seed + 0x9E3779B97F4A7C15L * ((long) seqId + 1));
        x = splitmix64(x ^ (0xD1B54A32D192ED03L * ((long) step + 1)));
        return (x >>> 40) * 0x1.0p-24f;
    }
}
