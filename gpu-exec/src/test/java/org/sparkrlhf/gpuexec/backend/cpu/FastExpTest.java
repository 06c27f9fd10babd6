package org.sparkrlhf.gpuexec.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Both of FastExp's exp paths against Math.exp: the scalar loops, and the Vector API's (the build's
 * test JVMs have its module, so FastExp.VECTOR holds there and the engine's kernel tests run on
 * it), over lengths that leave every tail size after whole vectors, shifted and negated, with
 * the clamp's ends and NaN; and the Vector API's max, sum and dot.
 */
class FastExpTest {
    private static final double TOLERANCE = 4e-7;

    static float[] inputs(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextDouble() * 180 - 90);
        return x;
    }

    /** exp(sign * (x - shift)) as FastExp defines it: clamped to [-87, 88]. */
    static double want(float x, float shift, float sign) {
        return Math.exp(Math.max(-87f, Math.min(88f, sign * (x - shift))));
    }

    static void check(String path, float[] in, float[] out, float shift, float sign) {
        for (int i = 0; i < in.length; i++) {
            double w = want(in[i], shift, sign);
            assertTrue(Math.abs(out[i] - w) <= TOLERANCE * w, path + ": exp at " + i + " of " + in.length + " (x = " + in[i] + ") gave " + out[i] + ", want " + w);
        }
    }

    @Test
    void theScalarLoopsAndTheVectorPathAgreeWithMathExp() {
        assertTrue(FastExp.VECTOR, "the test JVM runs with --add-modules jdk.incubator.vector, so the vector path is the one in use");
        for (int n = 0; n <= 40; n++) {
            for (float[] ss : new float[][]{{0f, 1f}, {3.5f, 1f}, {0f, -1f}}) {
                float shift = ss[0], sign = ss[1];
                float[] in = inputs(n, n);
                float[] scalar = in.clone(), vector = in.clone(), n2 = new float[n];
                FastExp.scalarExp(scalar, 0, n, shift, sign, n2);
                VectorExp.exp(vector, n, shift, sign, n2);
                check("scalar", in, scalar, shift, sign);
                check("vector", in, vector, shift, sign);
                // the same operations in the same order (no fused multiply-adds either way): the same bits,
                // so a run gives the same numbers with and without the module
                assertArrayEquals(scalar, vector, 0f, "scalar and vector exp of " + n + " values");
            }
        }
    }

    @Test
    void clampAndNaN() {
        float[] in = {-1000f, -87f, 88f, 1000f, Float.NaN, 0f, -0f, 1e-30f, -90f, 89f, Float.NaN, 2f, 3f, 4f, 5f, 6f, 7f};
        float[] scalar = in.clone(), vector = in.clone(), n2 = new float[in.length];
        FastExp.scalarExp(scalar, 0, in.length, 0f, 1f, n2);
        VectorExp.exp(vector, in.length, 0f, 1f, n2);
        for (float[] out : new float[][]{scalar, vector}) {
            assertTrue(Float.isNaN(out[4]) && Float.isNaN(out[10]), "NaN stays NaN");
            assertEquals(Math.exp(-87), out[0], 1e-6 * Math.exp(-87));
            assertEquals(Math.exp(88), out[3], 1e-6 * Math.exp(88));
            assertEquals(1f, out[5]);
            assertEquals(1f, out[6]);
        }
    }

    /**
     * The Vector API's max, sum and dot against exact (double) figures, over lengths that leave every
     * tail after whole groups of four vectors and offsets into the arrays: max exactly, sums to fp32
     * rounding of their terms' magnitudes (they add in another order than the scalar loops).
     */
    @Test
    void theVectorReductionsAgreeWithExactOnes() {
        for (int n = 0; n <= 4 * 16 + 40; n++) {
            float[] a = inputs(n + 3, 100 + n), b = inputs(n + 5, 200 + n);
            double max = Double.NEGATIVE_INFINITY, sum = 0, dot = 0, absSum = 0, absDot = 0;
            for (int i = 0; i < n; i++) {
                max = Math.max(max, a[3 + i]);
                sum += a[3 + i];
                absSum += Math.abs(a[3 + i]);
                dot += (double) a[3 + i] * b[5 + i];
                absDot += Math.abs((double) a[3 + i] * b[5 + i]);
            }
            assertEquals((float) max, VectorReductions.max(a, 3, n), "max of " + n);
            assertEquals(sum, VectorReductions.sum(a, 3, n), 1e-6 * absSum, "sum of " + n);
            assertEquals(dot, VectorReductions.dot(a, 3, b, 5, n), 1e-6 * absDot, "dot of " + n);
            assertEquals(FastExp.max(a, 3, n), VectorReductions.max(a, 3, n));
        }
        float[] withNaN = inputs(70, 9);
        withNaN[41] = Float.NaN;
        assertTrue(Float.isNaN(VectorReductions.max(withNaN, 0, 70)) && Float.isNaN(VectorReductions.sum(withNaN, 0, 70)), "NaN wins");
        float[] zeros = new float[33];
        java.util.Arrays.fill(zeros, -0f);
        zeros[20] = 0f;
        assertEquals(0f, VectorReductions.max(zeros, 0, 33), "+0 is above -0, as Math.max has it");
        assertEquals(Float.floatToIntBits(0f), Float.floatToIntBits(VectorReductions.max(zeros, 0, 33)));
    }
}
