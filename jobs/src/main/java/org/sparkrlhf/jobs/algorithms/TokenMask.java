package org.sparkrlhf.jobs.algorithms;

/** Checks shared by the per-token functions: flat [B, T] arrays of one length and a 0/1 mask. */
final class TokenMask {
    private TokenMask() {
    }

    static int count(int[] mask) {
        int n = 0;
        for (int m : mask) {
            if (m != 0 && m != 1) {
                throw new IllegalArgumentException("mask values must be 0 or 1, got " + m);
            }
            n += m;
        }
        return n;
    }

    static void sameLength(int[] mask, float[]... arrays) {
        for (float[] a : arrays) {
            if (a.length != mask.length) {
                throw new IllegalArgumentException("per-token arrays of " + a.length + " and " + mask.length + " values");
            }
        }
    }
}
