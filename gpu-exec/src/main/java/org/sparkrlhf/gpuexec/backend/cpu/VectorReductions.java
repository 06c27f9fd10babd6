package org.sparkrlhf.gpuexec.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link FastExp}'s max, sum and dot product on the JDK's Vector API (loaded only with the incubator
 * module, as {@link VectorExp}). The JIT leaves the scalar versions' eight running maxima or sums
 * scalar (a float sum may not be reordered, and Math.max on floats is a compare-and-blend per
 * element): over the 8192 logits of a row they took 2-3 ns an element, as long as the row's exp.
 * Here four vectors of running values, combined at the end: sums in yet another order, the same
 * values to fp32 rounding. Java's max semantics are kept (NaN wins, +0 above -0).
 *
 * <p>The order is fixed, so that a run gives the same bits on every machine and at every point of
 * the JIT's life (exact resume from a checkpoint, and the pinned runs of AlgorithmParityTest, rely
 * on it): vectors of 8 lanes whatever the machine's widest (AVX2 and AVX-512 alike), and a sum's
 * lanes added in index order rather than by {@code reduceLanes(ADD)}, whose order the Vector API
 * leaves to the implementation (compiled and interpreted code may differ).
 */
final class VectorReductions {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_256;
    private static final int L = SPECIES.length();

    private VectorReductions() {
    }

    /** The largest of a[off .. off + n), -infinity when n = 0. */
    static float max(float[] a, int off, int n) {
        FloatVector m0 = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY), m1 = m0, m2 = m0, m3 = m0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            m0 = m0.max(FloatVector.fromArray(SPECIES, a, off + i));
            m1 = m1.max(FloatVector.fromArray(SPECIES, a, off + i + L));
            m2 = m2.max(FloatVector.fromArray(SPECIES, a, off + i + 2 * L));
            m3 = m3.max(FloatVector.fromArray(SPECIES, a, off + i + 3 * L));
        }
        for (; i + L <= n; i += L) m0 = m0.max(FloatVector.fromArray(SPECIES, a, off + i));
        float m = m0.max(m1).max(m2.max(m3)).reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) m = Math.max(m, a[off + i]);
        return m;
    }

    /** The sum of a[off .. off + n). */
    static float sum(float[] a, int off, int n) {
        FloatVector s0 = FloatVector.zero(SPECIES), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            s0 = s0.add(FloatVector.fromArray(SPECIES, a, off + i));
            s1 = s1.add(FloatVector.fromArray(SPECIES, a, off + i + L));
            s2 = s2.add(FloatVector.fromArray(SPECIES, a, off + i + 2 * L));
            s3 = s3.add(FloatVector.fromArray(SPECIES, a, off + i + 3 * L));
        }
        for (; i + L <= n; i += L) s0 = s0.add(FloatVector.fromArray(SPECIES, a, off + i));
        float s = lanes(s0.add(s1).add(s2.add(s3)));
        for (; i < n; i++) s += a[off + i];
        return s;
    }

    /** The sum of a[aOff + i] * b[bOff + i] for i &lt; n. */
    static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector s0 = FloatVector.zero(SPECIES), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            s0 = FloatVector.fromArray(SPECIES, a, aOff + i).fma(FloatVector.fromArray(SPECIES, b, bOff + i), s0);
            s1 = FloatVector.fromArray(SPECIES, a, aOff + i + L).fma(FloatVector.fromArray(SPECIES, b, bOff + i + L), s1);
            s2 = FloatVector.fromArray(SPECIES, a, aOff + i + 2 * L).fma(FloatVector.fromArray(SPECIES, b, bOff + i + 2 * L), s2);
            s3 = FloatVector.fromArray(SPECIES, a, aOff + i + 3 * L).fma(FloatVector.fromArray(SPECIES, b, bOff + i + 3 * L), s3);
        }
        for (; i + L <= n; i += L) {
            s0 = FloatVector.fromArray(SPECIES, a, aOff + i).fma(FloatVector.fromArray(SPECIES, b, bOff + i), s0);
        }
        float s = lanes(s0.add(s1).add(s2.add(s3)));
        for (; i < n; i++) s += a[aOff + i] * b[bOff + i];
        return s;
    }

    /** The sum of a vector's lanes in index order. */
    static float lanes(FloatVector v) {
        float[] l = new float[L];
        v.intoArray(l, 0);
        float s = 0f;
        for (float x : l) s += x;
        return s;
    }
}
