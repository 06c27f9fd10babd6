package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Assumptions;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

/** What the GPU tests share: the skip when there is no GPU, random data, tensors on two backends, comparisons. */
final class Gpu {
    private Gpu() {}

    static void assumeGpu() {
        Assumptions.assumeTrue(CudaBackend.isAvailable(), () -> "skipped: " + CudaBackend.unavailableReason());
    }

    static float[] randn(SplittableRandom r, int n, float std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            double u1 = 1.0 - r.nextDouble(), u2 = r.nextDouble();
            v[i] = (float) (Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) * std);
        }
        return v;
    }

    static int[] ints(SplittableRandom r, int n, int bound) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = r.nextInt(bound);
        return v;
    }

    /** The same tensor on the reference (CPU) and the CUDA backend. */
    record Pair(Tensor cpu, Tensor gpu) {}

    static Pair floats(Backend cpu, Backend gpu, DType dtype, float[] values, int... shape) {
        Tensor a = cpu.allocate(dtype, shape), b = gpu.allocate(dtype, shape);
        cpu.upload(a, values);
        gpu.upload(b, values);
        return new Pair(a, b);
    }

    static Pair ints(Backend cpu, Backend gpu, int[] values, int... shape) {
        Tensor a = cpu.allocate(DType.I32, shape), b = gpu.allocate(DType.I32, shape);
        cpu.upload(a, values);
        gpu.upload(b, values);
        return new Pair(a, b);
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    /** Max |a - b| relative to max(1, max |reference|), over elements where keep is true (null: all). */
    static double relDiff(float[] reference, float[] actual, boolean[] keep) {
        if (reference.length != actual.length) throw new AssertionError("lengths " + reference.length + " vs " + actual.length);
        double m = 0;
        for (int i = 0; i < reference.length; i++) {
            if (keep != null && !keep[i]) continue;
            if (!Float.isFinite(actual[i]) && Float.isFinite(reference[i])) return Double.POSITIVE_INFINITY;
            m = Math.max(m, Math.abs(reference[i] - actual[i]));
        }
        return m / Math.max(1.0, maxAbs(reference));
    }

    static void assertClose(String what, float[] reference, float[] actual, double tol) {
        double d = relDiff(reference, actual, null);
        assertTrue(d <= tol, what + ": differs by " + d + " of max(1, largest " + maxAbs(reference) + "), tolerance " + tol);
    }

    static void assertClose(String what, Backend cpu, Backend gpu, Pair p, double tol) {
        assertClose(what, cpu.download(p.cpu()), gpu.download(p.gpu()), tol);
    }

    /** ||a - b|| / ||a|| (L2). */
    static double relL2(float[] reference, float[] actual) {
        double num = 0, den = 0;
        for (int i = 0; i < reference.length; i++) {
            double d = reference[i] - actual[i];
            num += d * d;
            den += (double) reference[i] * reference[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-30));
    }
}
