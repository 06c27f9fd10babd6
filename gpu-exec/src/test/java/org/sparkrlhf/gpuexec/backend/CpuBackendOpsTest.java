package org.sparkrlhf.gpuexec.backend;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Kernels that the fixtures do not reach, against direct double-precision computations. */
class CpuBackendOpsTest {
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static Tensor floats(float[] v, int... shape) {
        Tensor t = backend.allocate(DType.F32, shape);
        backend.upload(t, v);
        return t;
    }

    static Tensor ints(int[] v, int... shape) {
        Tensor t = backend.allocate(DType.I32, shape);
        backend.upload(t, v);
        return t;
    }

    static double entropy(float[] z, int off, int V) {
        double max = Double.NEGATIVE_INFINITY, sum = 0, h = 0;
        for (int j = 0; j < V; j++) max = Math.max(max, z[off + j]);
        for (int j = 0; j < V; j++) sum += Math.exp(z[off + j] - max);
        for (int j = 0; j < V; j++) {
            double lp = z[off + j] - max - Math.log(sum);
            h -= Math.exp(lp) * lp;
        }
        return h;
    }

    @Test
    void entropyAndLogprobGradientsMatchFiniteDifferences() {
        int N = 3, V = 7;
        Random r = new Random(5);
        float[] z = new float[N * V];
        for (int i = 0; i < z.length; i++) z[i] = (float) (2 * r.nextGaussian());
        int[] targets = {2, 0, 6};
        float[] gl = {0.3f, -1.1f, 0.7f}, ge = {-0.4f, 0.9f, 0.25f};
        Tensor logits = floats(z, N, V), tg = ints(targets, N), lp = backend.allocate(DType.F32, N),
                ent = backend.allocate(DType.F32, N), lse = backend.allocate(DType.F32, N), dz = backend.allocate(DType.F32, N, V);
        backend.tokenLogprobs(lp, ent, lse, logits, tg);
        float[] entropies = backend.download(ent);
        for (int n = 0; n < N; n++) assertEquals(entropy(z, n * V, V), entropies[n], 1e-5);
        backend.tokenLogprobsBackward(dz, floats(gl, N), floats(ge, N), logits, lse, ent, tg);
        float[] got = backend.download(dz);
        double h = 1e-3;
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < V; j++) {
                double[] f = new double[2];
                for (int s = 0; s < 2; s++) {
                    float[] zz = z.clone();
                    zz[n * V + j] += (float) (s == 0 ? h : -h);
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int k = 0; k < V; k++) max = Math.max(max, zz[n * V + k]);
                    for (int k = 0; k < V; k++) sum += Math.exp(zz[n * V + k] - max);
                    double logp = zz[n * V + targets[n]] - max - Math.log(sum);
                    f[s] = gl[n] * logp + ge[n] * entropy(zz, n * V, V);
                }
                double want = (f[0] - f[1]) / (2 * h);
                assertEquals(want, got[n * V + j], 2e-3, "row " + n + " logit " + j);
            }
        }
    }

    @Test
    void logSoftmaxRowsSumToOne() {
        float[] z = {1f, 2f, 3f, -1f, 0f, 100f};
        Tensor out = backend.allocate(DType.F32, 2, 3);
        backend.logSoftmax(out, floats(z, 2, 3));
        float[] o = backend.download(out);
        for (int n = 0; n < 2; n++) {
            double s = 0;
            for (int j = 0; j < 3; j++) s += Math.exp(o[n * 3 + j]);
            assertEquals(1.0, s, 1e-6);
        }
        assertEquals(-Math.log(1 + Math.exp(-1) + Math.exp(-2)), o[2], 1e-6);
    }

    @Test
    void matmulAndItsBackwardMatchDirectSums() {
        int N = 7, IN = 13, OUT = 70; // odd sizes reach the tails of the tiled kernel
        Random r = new Random(9);
        float[] x = new float[N * IN], w = new float[OUT * IN], b = new float[OUT], g = new float[N * OUT];
        for (float[] a : new float[][]{x, w, b, g}) for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        Tensor tx = floats(x, N, IN), tw = floats(w, OUT, IN), tb = floats(b, OUT), out = backend.allocate(DType.F32, N, OUT);
        backend.matmul(out, tx, tw, tb);
        float[] o = backend.download(out);
        Tensor dx = floats(new float[N * IN], N, IN), dw = floats(new float[OUT * IN], OUT, IN), db = floats(new float[OUT], OUT);
        backend.matmulBackward(dx, dw, db, floats(g, N, OUT), tx, tw);
        float[] gx = backend.download(dx), gw = backend.download(dw), gb = backend.download(db);
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < OUT; j++) {
                double s = b[j];
                for (int i = 0; i < IN; i++) s += (double) x[n * IN + i] * w[j * IN + i];
                assertEquals(s, o[n * OUT + j], 1e-4);
            }
            for (int i = 0; i < IN; i++) {
                double s = 0;
                for (int j = 0; j < OUT; j++) s += (double) g[n * OUT + j] * w[j * IN + i];
                assertEquals(s, gx[n * IN + i], 1e-4);
            }
        }
        for (int j = 0; j < OUT; j++) {
            double sb = 0;
            for (int n = 0; n < N; n++) sb += g[n * OUT + j];
            assertEquals(sb, gb[j], 1e-4);
            for (int i = 0; i < IN; i++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double) g[n * OUT + j] * x[n * IN + i];
                assertEquals(s, gw[j * IN + i], 1e-4);
            }
        }
    }

    @Test
    void counterRngIsAPureFunctionOfSeedSequenceAndStep() {
        assertEquals(CounterRng.uniform(1, 2, 3), CounterRng.uniform(1, 2, 3));
        double mean = 0;
        for (int s = 0; s < 10000; s++) {
            float u = CounterRng.uniform(42, 0, s);
            assert u >= 0 && u < 1;
            mean += u;
        }
        assertEquals(0.5, mean / 10000, 0.01);
    }
}
