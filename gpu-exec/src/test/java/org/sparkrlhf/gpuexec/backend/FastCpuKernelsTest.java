package org.sparkrlhf.gpuexec.backend;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fast CPU kernels (OpenBLAS products, BLAS attention, the vectorisable exp) against the
 * pure-Java reference kernels: each op on random inputs, with one and two threads (two exercise
 * the blocks of rows and of columns a product is cut into), and whole models forward, backward
 * and decoding.
 */
@Timeout(120)
class FastCpuKernelsTest {
    static CpuBackend reference, fast1, fast2;

    @BeforeAll
    static void start() {
        reference = new CpuBackend(1, CpuKernels.REFERENCE);
        fast1 = new CpuBackend(1, CpuKernels.FAST);
        // every loop cut, however small: the tests' shapes would otherwise run on one thread
        fast2 = new CpuBackend(2, CpuKernels.FAST, 1);
    }

    @AfterAll
    static void stop() {
        reference.close();
        fast1.close();
        fast2.close();
    }

    static CpuBackend fast(int threads) {
        return threads == 1 ? fast1 : fast2;
    }

    static float[] gaussian(int n, long seed, double std) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * std);
        return v;
    }

    /** Runs the same op on both backends: op gets a backend and uploads, returns what it compares. */
    interface Op {
        float[][] run(Backend b);
    }

    static Tensor floats(Backend b, float[] v, int... shape) {
        Tensor t = b.allocate(DType.F32, shape);
        b.upload(t, v);
        return t;
    }

    static Tensor ints(Backend b, int[] v, int... shape) {
        Tensor t = b.allocate(DType.I32, shape);
        b.upload(t, v);
        return t;
    }

    /** Each output of op on the fast backend within tol * max(1, max |reference|) of the reference's. */
    static void same(String what, int threads, double tol, Op op) {
        float[][] want = op.run(reference), got = op.run(fast(threads));
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            double scale = 1, diff = 0;
            for (float v : want[i]) scale = Math.max(scale, Math.abs(v));
            for (int j = 0; j < want[i].length; j++) {
                assertTrue(Float.isFinite(got[i][j]) == Float.isFinite(want[i][j]), what + " output " + i + " at " + j + ": " + got[i][j] + " vs " + want[i][j]);
                if (Float.isFinite(want[i][j])) diff = Math.max(diff, Math.abs(got[i][j] - want[i][j]));
            }
            assertTrue(diff <= tol * scale, what + " (" + threads + " threads) output " + i + " differs by " + diff + " (largest " + scale + ")");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void matmulForwardAndBackwardMatchTheReference(int threads) {
        // rows: one (decode), few (the out^T path), more; with two threads the products are cut
        // by rows or by columns depending on which operand is smaller, so both orders of IC and OC
        for (int[] shape : new int[][]{{1, 96, 136}, {7, 96, 136}, {40, 96, 136}, {200, 96, 136}, {200, 136, 96}, {40, 136, 96}}) {
            int N = shape[0], IC = shape[1], OC = shape[2];
            float[] x = gaussian(N * IC, N, 1), w = gaussian(OC * IC, 2, 0.1), bias = gaussian(OC, 3, 1);
            float[] g = gaussian(N * OC, 4, 1), dx0 = gaussian(N * IC, 5, 1), dw0 = gaussian(OC * IC, 6, 1), db0 = gaussian(OC, 7, 1);
            same("matmul N=" + N, threads, 1e-5, b -> {
                Tensor out = b.allocate(DType.F32, N, OC), noBias = b.allocate(DType.F32, N, OC);
                Tensor in = floats(b, x, N, IC), weight = floats(b, w, OC, IC);
                b.matmul(out, in, weight, floats(b, bias, OC));
                b.matmul(noBias, in, weight, null);
                Tensor dx = floats(b, dx0, N, IC), dw = floats(b, dw0, OC, IC), db = floats(b, db0, OC);
                b.matmulBackward(dx, dw, db, floats(b, g, N, OC), in, weight);
                return new float[][]{b.download(out), b.download(noBias), b.download(dx), b.download(dw), b.download(db)};
            });
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void productsOfOneInputMatchTheReference(int threads) {
        // two products (gate, up: whole side by side on two threads) and three of two widths (q, k, v:
        // two whole, the third cut), with and without biases; few rows take them one after the other
        for (int N : new int[]{7, 40, 200}) {
            int IC = 96;
            int[] widths = {136, 136, 72};
            float[] x = gaussian(N * IC, N, 1);
            for (int P : new int[]{2, 3}) {
                same("matmuls N=" + N + " P=" + P, threads, 1e-5, b -> {
                    Tensor in = floats(b, x, N, IC);
                    Tensor[] outs = new Tensor[P], weights = new Tensor[P], biases = new Tensor[P];
                    for (int i = 0; i < P; i++) {
                        outs[i] = b.allocate(DType.F32, N, widths[i]);
                        weights[i] = floats(b, gaussian(widths[i] * IC, 10 + i, 0.1), widths[i], IC);
                        biases[i] = i == 1 ? null : floats(b, gaussian(widths[i], 20 + i, 1), widths[i]);
                    }
                    b.matmuls(outs, in, weights, biases);
                    float[][] r = new float[P][];
                    for (int i = 0; i < P; i++) r[i] = b.download(outs[i]);
                    return r;
                });
            }
        }
    }

    @Test
    void aWeightWrittenAfterAProductIsReadAfresh() {
        // the native mirror of a weight must follow writes (uploads, optimizer steps)
        int N = 50, IC = 16, OC = 24;
        same("matmul after a write", 1, 1e-5, b -> {
            Tensor in = floats(b, gaussian(N * IC, 1, 1), N, IC), weight = floats(b, gaussian(OC * IC, 2, 1), OC, IC);
            Tensor out = b.allocate(DType.F32, N, OC);
            b.matmul(out, in, weight, null);
            b.scale(weight, -0.5f);
            b.matmul(out, in, weight, null);
            float[] first = b.download(out);
            b.upload(weight, gaussian(OC * IC, 3, 1));
            b.matmul(out, in, weight, null);
            return new float[][]{first, b.download(out)};
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void gradientsAccumulatedByProductsFollowOtherOps(int threads) {
        // products accumulate dIn and dWeight in native memory: zeroing, two products into the same
        // gradients, Java ops on them in between (scale, add, an input rewritten after its forward)
        // and a second step after zeroing (the first product then overwrites) must see and leave
        // the same values as the reference
        int N = 60, IC = 24, OC = 40;
        same("gradients across ops", threads, 1e-5, b -> {
            Tensor in = floats(b, gaussian(N * IC, 1, 1), N, IC), in2 = floats(b, gaussian(N * IC, 2, 1), N, IC);
            Tensor weight = floats(b, gaussian(OC * IC, 3, 0.1), OC, IC), out = b.allocate(DType.F32, N, OC);
            Tensor g = floats(b, gaussian(N * OC, 4, 1), N, OC), g2 = floats(b, gaussian(N * OC, 5, 1), N, OC);
            Tensor dx = b.allocate(DType.F32, N, IC), dw = b.allocate(DType.F32, OC, IC), sum = b.allocate(DType.F32, OC, IC);
            float[][] seen = new float[7][];
            for (int step = 0; step < 2; step++) {
                b.zero(dx);
                b.zero(dw);
                b.matmul(out, in, weight, null);
                b.matmulBackward(dx, dw, null, g, in, weight);
                b.matmul(out, in2, weight, null);
                b.matmulBackward(dx, dw, null, g2, in2, weight);
                b.scale(dx, 0.5f);
                b.matmulBackward(dx, null, null, g, in, weight);
                b.add(sum, dw, dw);
                b.matmulBackward(null, dw, null, g2, in, weight);
                b.upload(in, gaussian(N * IC, 10 + step, 1));
                b.matmulBackward(null, dw, null, g, in, weight);
                seen[2 * step] = b.download(dx);
                seen[2 * step + 1] = b.download(dw);
            }
            seen[4] = b.download(sum);
            // a zeroing not yet taken up by a product is seen by other ops
            b.zero(dw);
            b.add(sum, sum, dw);
            seen[5] = b.download(sum);
            b.zero(dx);
            seen[6] = b.download(dx);
            return seen;
        });
    }

    /** Attention inputs: padding on the right of row 0, on the left of row 1 (queries with no key), GQA. */
    static void attentionCase(int threads, int window) {
        int B = 2, T = 9, H = 4, KV = 2, D = 8;
        int[] mask = new int[B * T];
        for (int t = 0; t < T; t++) {
            mask[t] = t < 6 ? 1 : 0;
            mask[T + t] = t >= 3 ? 1 : 0;
        }
        float[] q = gaussian(B * T * H * D, 1, 1), k = gaussian(B * T * KV * D, 2, 1), v = gaussian(B * T * KV * D, 3, 1);
        float[] g = gaussian(B * T * H * D, 4, 1), dq0 = gaussian(q.length, 5, 1), dk0 = gaussian(k.length, 6, 1), dv0 = gaussian(v.length, 7, 1);
        same("attention window " + window, threads, 1e-5, b -> {
            Tensor qt = floats(b, q, B, T, H * D), kt = floats(b, k, B, T, KV * D), vt = floats(b, v, B, T, KV * D), m = ints(b, mask, B, T);
            Tensor out = b.allocate(DType.F32, B, T, H * D), lse = b.allocate(DType.F32, B, H, T);
            b.attention(out, lse, qt, kt, vt, m, H, KV, window);
            Tensor dq = floats(b, dq0, B, T, H * D), dk = floats(b, dk0, B, T, KV * D), dv = floats(b, dv0, B, T, KV * D);
            Tensor dOut = floats(b, g, B, T, H * D);
            b.attentionBackward(dq, dk, dv, dOut, out, lse, qt, kt, vt, m, H, KV, window);
            float[][] first = {b.download(out), b.download(lse), b.download(dq), b.download(dk), b.download(dv)};
            // again into freshly zeroed gradients (their zeroing pending until the products)
            b.zero(dq);
            b.zero(dk);
            b.zero(dv);
            b.attentionBackward(dq, dk, dv, dOut, out, lse, qt, kt, vt, m, H, KV, window);
            return new float[][]{first[0], first[1], first[2], first[3], first[4], b.download(dq), b.download(dk), b.download(dv)};
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void attentionAndItsBackwardMatchTheReference(int threads) {
        attentionCase(threads, 0);
        attentionCase(threads, 3);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void decodeAttentionMatchesTheReference(int threads) {
        int B = 3, S = 13, H = 4, KV = 2, D = 8;
        float[] q = gaussian(B * H * D, 1, 1), kc = gaussian(B * S * KV * D, 2, 1), vc = gaussian(B * S * KV * D, 3, 1);
        int[] mask = new int[B * S];
        for (int i = 0; i < mask.length; i++) mask[i] = i % 5 == 1 ? 0 : 1;
        int[] slots = {12, 4, 9};
        for (int window : new int[]{0, 4}) {
            same("decodeAttention window " + window, threads, 1e-5, b -> {
                Tensor out = b.allocate(DType.F32, B, H * D);
                b.decodeAttention(out, floats(b, q, B, H * D), floats(b, kc, B, S, KV * D), floats(b, vc, B, S, KV * D),
                        ints(b, mask, B, S), ints(b, slots, B), H, KV, window);
                return new float[][]{b.download(out)};
            });
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void decodeAfterKvAppendSeesTheNewRows(int threads) {
        // the fast decode reads the caches' native mirrors, which kvAppend writes through: a step
        // after an append must see the new key and value (row 1 has no allowed key before it)
        int B = 2, S = 6, H = 4, KV = 2, D = 8, C = KV * D;
        same("decode after kvAppend", threads, 1e-5, b -> {
            Tensor kc = floats(b, gaussian(B * S * C, 1, 1), B, S, C), vc = floats(b, gaussian(B * S * C, 2, 1), B, S, C);
            Tensor m = ints(b, new int[]{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, B, S), out = b.allocate(DType.F32, B, H * D);
            Tensor q = floats(b, gaussian(B * H * D, 3, 1), B, H * D);
            b.decodeAttention(out, q, kc, vc, m, ints(b, new int[]{2, 2}, B), H, KV, 0);
            float[] first = b.download(out);
            Tensor at3 = ints(b, new int[]{3, 3}, B);
            b.kvAppend(kc, floats(b, gaussian(B * C, 4, 1), B, 1, C), at3);
            b.kvAppend(vc, floats(b, gaussian(B * C, 5, 1), B, 1, C), at3);
            b.kvAppend(m, ints(b, new int[]{1, 1}, B, 1), at3);
            b.decodeAttention(out, q, kc, vc, m, at3, H, KV, 0);
            return new float[][]{first, b.download(out)};
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void softmaxLogprobsAndSwigluMatchTheReference(int threads) {
        int N = 6, V = 1037, I = 2500;
        float[] z = gaussian(N * V, 1, 3);
        z[5] = -120f; // below FastExp's clamp: its probability is about 0 either way
        int[] targets = {0, 5, 1036, 17, 400, 999};
        float[] gl = gaussian(N, 2, 1), ge = gaussian(N, 3, 1), dz0 = gaussian(N * V, 4, 1);
        same("logSoftmax, tokenLogprobs", threads, 1e-5, b -> {
            Tensor logits = floats(b, z, N, V), tg = ints(b, targets, N);
            Tensor ls = b.allocate(DType.F32, N, V), lp = b.allocate(DType.F32, N), ent = b.allocate(DType.F32, N), lse = b.allocate(DType.F32, N);
            b.logSoftmax(ls, logits);
            b.tokenLogprobs(lp, ent, lse, logits, tg);
            Tensor dz = floats(b, dz0, N, V), dz2 = floats(b, dz0, N, V);
            b.tokenLogprobsBackward(dz, floats(b, gl, N), floats(b, ge, N), logits, lse, ent, tg);
            b.tokenLogprobsBackward(dz2, floats(b, gl, N), null, logits, lse, null, tg);
            return new float[][]{b.download(ls), b.download(lp), b.download(ent), b.download(lse), b.download(dz), b.download(dz2)};
        });
        float[] gate = gaussian(I, 5, 4), up = gaussian(I, 6, 1), g = gaussian(I, 7, 1), dg0 = gaussian(I, 8, 1), du0 = gaussian(I, 9, 1);
        same("swiglu", threads, 1e-5, b -> {
            Tensor gt = floats(b, gate, I), ut = floats(b, up, I), out = b.allocate(DType.F32, I);
            b.swiglu(out, gt, ut);
            Tensor dg = floats(b, dg0, I), du = floats(b, du0, I);
            b.swigluBackward(dg, du, floats(b, g, I), gt, ut);
            return new float[][]{b.download(out), b.download(dg), b.download(du)};
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void logprobsOfAProductsLogitsAndTheirGradientInNativeMemory(int threads) {
        // the LM head's way: logits written by a product (read row by row from native memory),
        // dLogits zeroed and written by the logprobs' backward where the next product reads it,
        // over two steps (the second's zeroing is pending: overwritten, rows with no upstream
        // gradient included), then added to, and read by Java ops and by a product
        int N = 7, C = 40, V = 1037;
        float[] x = gaussian(N * C, 1, 1), w = gaussian(V * C, 2, 0.5);
        int[] targets = {0, 5, 1036, 17, 400, 999, 3};
        float[] gl = gaussian(N, 3, 1), ge = gaussian(N, 4, 1), dz0 = gaussian(N * V, 5, 1);
        gl[2] = 0f;
        ge[2] = 0f;
        same("logprobs of a product's logits", threads, 1e-5, b -> {
            Tensor in = floats(b, x, N, C), weight = floats(b, w, V, C), logits = b.allocate(DType.F32, N, V), tg = ints(b, targets, N);
            Tensor lp = b.allocate(DType.F32, N), ent = b.allocate(DType.F32, N), lse = b.allocate(DType.F32, N);
            Tensor dz = b.allocate(DType.F32, N, V), dx = b.allocate(DType.F32, N, C), dw = b.allocate(DType.F32, V, C);
            float[][] seen = new float[9][];
            for (int step = 0; step < 2; step++) {
                b.matmul(logits, in, weight, null);
                b.tokenLogprobs(lp, ent, lse, logits, tg);
                b.zero(dz);
                b.tokenLogprobsBackward(dz, floats(b, gl, N), step == 0 ? null : floats(b, ge, N), logits, lse, step == 0 ? null : ent, tg);
                b.zero(dx);
                b.zero(dw);
                b.matmulBackward(dx, dw, null, dz, in, weight);
                seen[4 * step] = b.download(lp);
                seen[4 * step + 1] = b.download(dz);
                seen[4 * step + 2] = b.download(dx);
                seen[4 * step + 3] = b.download(dw);
                b.upload(in, gaussian(N * C, 10 + step, 1));
            }
            // added to values a Java op wrote
            b.upload(dz, dz0);
            b.tokenLogprobsBackward(dz, floats(b, gl, N), null, logits, lse, null, tg);
            seen[8] = b.download(dz);
            return seen;
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void swigluBetweenProductsInNativeMemory(int threads) {
        // the MLP's way: gate and up written by products, the output read by the down product, dOut
        // written by its backward, dGate and dUp zeroed (pending from the second step on) and read
        // by the gate and up products' backward; then a Java op reads every one of them
        int N = 9, C = 24, I = 1500;
        float[] x = gaussian(N * C, 1, 1), wg = gaussian(I * C, 2, 0.5), wu = gaussian(I * C, 3, 0.5), wd = gaussian(C * I, 4, 0.1);
        float[] g0 = gaussian(N * C, 5, 1);
        same("swiglu between products", threads, 1e-5, b -> {
            Tensor in = floats(b, x, N, C), gw = floats(b, wg, I, C), uw = floats(b, wu, I, C), dw = floats(b, wd, C, I);
            Tensor gate = b.allocate(DType.F32, N, I), up = b.allocate(DType.F32, N, I), act = b.allocate(DType.F32, N, I);
            Tensor out = b.allocate(DType.F32, N, C), dOut = floats(b, g0, N, C), dAct = b.allocate(DType.F32, N, I);
            Tensor dGate = b.allocate(DType.F32, N, I), dUp = b.allocate(DType.F32, N, I), dx = b.allocate(DType.F32, N, C);
            float[][] seen = new float[12][];
            for (int step = 0; step < 2; step++) {
                b.matmul(gate, in, gw, null);
                b.matmul(up, in, uw, null);
                b.swiglu(act, gate, up);
                b.matmul(out, act, dw, null);
                b.zero(dAct);
                b.matmulBackward(dAct, null, null, dOut, act, dw);
                b.zero(dGate);
                b.zero(dUp);
                b.swigluBackward(dGate, dUp, dAct, gate, up);
                b.zero(dx);
                b.matmulBackward(dx, null, null, dGate, in, gw);
                b.matmulBackward(dx, null, null, dUp, in, uw);
                seen[6 * step] = b.download(out);
                seen[6 * step + 1] = b.download(dx);
                seen[6 * step + 2] = b.download(act);
                seen[6 * step + 3] = b.download(dGate);
                seen[6 * step + 4] = b.download(dUp);
                seen[6 * step + 5] = b.download(dAct);
                b.upload(in, gaussian(N * C, 10 + step, 1));
            }
            return seen;
        });
    }

    /** What a model computed: token logprobs, every parameter's gradient, greedy continuations. */
    record ModelRun(float[] logprobs, float[][] gradients, int[][] tokens) {
    }

    /** A small GQA model with random weights: forward with entropies, backward of the SFT loss, greedy decoding. */
    static ModelRun run(CpuBackend b, int[][] rows) {
        Batch batch = Batch.rightPadded(rows, 0);
        try (LlamaModel m = LlamaModel.random(b, ModelConfig.llama(300, 48, 100, 2, 4, 2, 64), DType.F32, 11, 0.1f);
             Generator gen = new Generator(m)) {
            TokenStats st = m.forward(batch, true);
            m.zeroGradients();
            m.backward(SftLoss.of(batch, st).dLogprobs(), null);
            float[][] g = new float[m.parameters().specs().size()][];
            int j = 0;
            for (LlamaWeights.Spec s : m.parameters().specs()) g[j++] = b.download(m.gradients().get(s.name()));
            GenerationResult res = gen.generate(rows, Generator.Options.greedy(10, new int[0], 0));
            return new ModelRun(st.logprobs(), g, res.tokens());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void aModelsLogprobsGradientsAndGreedyTokensMatchTheReference(int threads) {
        int[][] rows = new int[5][];
        SplittableRandom r = new SplittableRandom(3);
        for (int b = 0; b < rows.length; b++) {
            rows[b] = new int[12 + 7 * b];
            for (int t = 0; t < rows[b].length; t++) rows[b][t] = r.nextInt(300);
        }
        ModelRun want = run(reference, rows), got = run(fast(threads), rows);
        double d = 0;
        for (int i = 0; i < want.logprobs().length; i++) d = Math.max(d, Math.abs(want.logprobs()[i] - got.logprobs()[i]));
        assertTrue(d < 1e-4, "token logprobs differ by " + d);
        for (int p = 0; p < want.gradients().length; p++) {
            double scale = 1e-12, diff = 0;
            for (float v : want.gradients()[p]) scale = Math.max(scale, Math.abs(v));
            for (int i = 0; i < want.gradients()[p].length; i++) diff = Math.max(diff, Math.abs(want.gradients()[p][i] - got.gradients()[p][i]));
            assertTrue(diff <= 1e-3 * scale, "gradient " + p + " differs by " + diff + " (largest " + scale + ")");
        }
        for (int b = 0; b < rows.length; b++) assertArrayEquals(want.tokens()[b], got.tokens()[b], "greedy tokens of row " + b);
    }
}
