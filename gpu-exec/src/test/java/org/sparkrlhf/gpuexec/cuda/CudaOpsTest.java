package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.sparkrlhf.gpuexec.cuda.Gpu.assertClose;
import static org.sparkrlhf.gpuexec.cuda.Gpu.floats;
import static org.sparkrlhf.gpuexec.cuda.Gpu.ints;
import static org.sparkrlhf.gpuexec.cuda.Gpu.randn;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.sparkrlhf.gpuexec.backend.AdamWStep;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.Gpu.Pair;

/**
 * Every op of the CUDA backend against the CPU backend (the reference) on random data. In FP32
 * mode they agree to 1e-5 of the largest value (only summation order differs). In BF16 mode the
 * GEMM and attention operands are rounded to bf16 (8 significant bits, unit roundoff 2^-9), so a
 * dot product of K terms may differ by about sqrt(K) * 2^-9 of its scale: 3e-2 is taken for K <= 128.
 */
@Timeout(120)
class CudaOpsTest {
    static CpuBackend cpu;
    static CudaBackend fp32, bf16;

    @BeforeAll
    static void start() {
        Gpu.assumeGpu();
        cpu = new CpuBackend();
        fp32 = new CudaBackend(0, Precision.FP32);
        bf16 = new CudaBackend(0, Precision.BF16);
    }

    @AfterAll
    static void stop() {
        if (fp32 != null) fp32.close();
        if (bf16 != null) bf16.close();
        if (cpu != null) cpu.close();
    }

    static CudaBackend gpu(Precision p) {
        return p == Precision.FP32 ? fp32 : bf16;
    }

    static double tol(Precision p) {
        return p == Precision.FP32 ? 1e-5 : 3e-2;
    }

    @Test
    void elementwiseOpsCopiesAndCasts() {
        SplittableRandom r = new SplittableRandom(1);
        float[] a = randn(r, 1000, 1f), b = randn(r, 1000, 1f);
        Pair x = floats(cpu, fp32, DType.F32, a, 10, 100), y = floats(cpu, fp32, DType.F32, b, 10, 100);
        Pair h = floats(cpu, fp32, DType.BF16, b, 1000);
        cpu.add(x.cpu(), x.cpu(), y.cpu());
        fp32.add(x.gpu(), x.gpu(), y.gpu());
        assertClose("add", cpu, fp32, x, 0);
        cpu.scale(x.cpu(), 0.37f);
        fp32.scale(x.gpu(), 0.37f);
        assertClose("scale", cpu, fp32, x, 0);
        cpu.copy(h.cpu(), x.cpu());
        fp32.copy(h.gpu(), x.gpu());
        assertClose("copy F32 -> BF16 (round to nearest even)", cpu, fp32, h, 0);
        cpu.add(h.cpu(), h.cpu(), y.cpu());
        fp32.add(h.gpu(), h.gpu(), y.gpu());
        assertClose("add into BF16", cpu, fp32, h, 0);
        Pair s = floats(cpu, fp32, DType.F32, new float[] {0.5f}, 1);
        cpu.sumSquares(s.cpu(), x.cpu());
        fp32.sumSquares(s.gpu(), x.gpu());
        assertClose("sumSquares", cpu, fp32, s, 1e-5);
        Pair n = ints(cpu, fp32, new int[] {1, 2, 3}, 3);
        fp32.addInt(n.gpu(), 5);
        assertArrayEquals(new int[] {6, 7, 8}, fp32.downloadInts(n.gpu()));
        fp32.zero(x.gpu());
        assertEquals(0.0, Gpu.maxAbs(fp32.download(x.gpu())));
    }

    @ParameterizedTest
    @CsvSource({"FP32, F32, F32", "FP32, BF16, F32", "FP32, BF16, BF16", "BF16, F32, F32", "BF16, BF16, BF16"})
    void matmulForwardAndBackwardWithBias(Precision p, DType weightType, DType actType) {
        CudaBackend g = gpu(p);
        SplittableRandom r = new SplittableRandom(2);
        int N = 37, IN = 48, OUT = 70;
        Pair x = floats(cpu, g, actType, randn(r, N * IN, 1f), N, IN);
        Pair w = floats(cpu, g, weightType, randn(r, OUT * IN, 0.2f), OUT, IN);
        Pair bias = floats(cpu, g, weightType, randn(r, OUT, 1f), OUT);
        Pair out = floats(cpu, g, actType, new float[N * OUT], N, OUT);
        cpu.matmul(out.cpu(), x.cpu(), w.cpu(), bias.cpu());
        g.matmul(out.gpu(), x.gpu(), w.gpu(), bias.gpu());
        double t = actType == DType.BF16 ? Math.max(tol(p), 8e-3) : tol(p); // bf16 outputs: a rounding each
        assertClose("matmul out", cpu, g, out, t);
        Pair dOut = floats(cpu, g, actType, randn(r, N * OUT, 1f), N, OUT);
        Pair dx = floats(cpu, g, actType, randn(r, N * IN, 1f), N, IN);  // backward adds into what is there
        Pair dw = floats(cpu, g, DType.F32, randn(r, OUT * IN, 1f), OUT, IN);
        Pair db = floats(cpu, g, DType.F32, randn(r, OUT, 1f), OUT);
        cpu.matmulBackward(dx.cpu(), dw.cpu(), db.cpu(), dOut.cpu(), x.cpu(), w.cpu());
        g.matmulBackward(dx.gpu(), dw.gpu(), db.gpu(), dOut.gpu(), x.gpu(), w.gpu());
        assertClose("matmul dIn", cpu, g, dx, t);
        assertClose("matmul dWeight", cpu, g, dw, t);
        assertClose("matmul dBias", cpu, g, db, actType == DType.BF16 ? 8e-3 : 1e-5);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void rmsnormRotarySwigluEmbeddingGather(DType type) {
        if (type == DType.I32) return;
        double t = type == DType.F32 ? 1e-5 : 8e-3;
        SplittableRandom r = new SplittableRandom(3);
        int N = 33, C = 96, heads = 6, D = 16, V = 50;
        Pair x = floats(cpu, fp32, type, randn(r, N * C, 1f), N, C);
        Pair w = floats(cpu, fp32, type, randn(r, C, 1f), C);
        Pair out = floats(cpu, fp32, type, new float[N * C], N, C);
        Pair rstd = floats(cpu, fp32, DType.F32, new float[N], N);
        cpu.rmsnorm(out.cpu(), rstd.cpu(), x.cpu(), w.cpu(), 1e-5f);
        fp32.rmsnorm(out.gpu(), rstd.gpu(), x.gpu(), w.gpu(), 1e-5f);
        assertClose("rmsnorm", cpu, fp32, out, t);
        assertClose("rmsnorm rstd", cpu, fp32, rstd, 1e-5);
        Pair dOut = floats(cpu, fp32, type, randn(r, N * C, 1f), N, C);
        Pair dx = floats(cpu, fp32, type, randn(r, N * C, 1f), N, C);
        Pair dw = floats(cpu, fp32, DType.F32, randn(r, C, 1f), C);
        cpu.rmsnormBackward(dx.cpu(), dw.cpu(), dOut.cpu(), x.cpu(), w.cpu(), rstd.cpu());
        fp32.rmsnormBackward(dx.gpu(), dw.gpu(), dOut.gpu(), x.gpu(), w.gpu(), rstd.gpu());
        assertClose("rmsnorm dIn", cpu, fp32, dx, t);
        assertClose("rmsnorm dWeight", cpu, fp32, dw, type == DType.F32 ? 1e-5 : 1e-3);

        int[] posv = new int[N];
        for (int i = 0; i < N; i++) posv[i] = r.nextInt(200);
        Pair pos = ints(cpu, fp32, posv, N);
        float[] inv = new float[D / 2];
        for (int i = 0; i < D / 2; i++) inv[i] = (float) (1.0 / Math.pow(10000.0, 2.0 * i / D));
        Pair invFreq = floats(cpu, fp32, DType.F32, inv, D / 2);
        cpu.rotary(x.cpu(), pos.cpu(), invFreq.cpu(), heads);
        fp32.rotary(x.gpu(), pos.gpu(), invFreq.gpu(), heads);
        assertClose("rotary", cpu, fp32, x, type == DType.F32 ? 2e-5 : 8e-3);
        cpu.rotaryBackward(x.cpu(), pos.cpu(), invFreq.cpu(), heads);
        fp32.rotaryBackward(x.gpu(), pos.gpu(), invFreq.gpu(), heads);
        assertClose("rotary backward", cpu, fp32, x, type == DType.F32 ? 2e-5 : 1.6e-2);

        Pair gate = floats(cpu, fp32, type, randn(r, N * C, 2f), N, C), up = floats(cpu, fp32, type, randn(r, N * C, 1f), N, C);
        cpu.swiglu(out.cpu(), gate.cpu(), up.cpu());
        fp32.swiglu(out.gpu(), gate.gpu(), up.gpu());
        assertClose("swiglu", cpu, fp32, out, t);
        Pair dg = floats(cpu, fp32, type, new float[N * C], N, C), du = floats(cpu, fp32, type, randn(r, N * C, 1f), N, C);
        cpu.swigluBackward(dg.cpu(), du.cpu(), dOut.cpu(), gate.cpu(), up.cpu());
        fp32.swigluBackward(dg.gpu(), du.gpu(), dOut.gpu(), gate.gpu(), up.gpu());
        assertClose("swiglu dGate", cpu, fp32, dg, t);
        assertClose("swiglu dUp", cpu, fp32, du, t);

        Pair table = floats(cpu, fp32, type, randn(r, V * C, 1f), V, C);
        Pair ids = ints(cpu, fp32, Gpu.ints(r, N, V), N);
        cpu.embedding(out.cpu(), ids.cpu(), table.cpu());
        fp32.embedding(out.gpu(), ids.gpu(), table.gpu());
        assertClose("embedding", cpu, fp32, out, 0);
        Pair dTable = floats(cpu, fp32, DType.F32, randn(r, V * C, 1f), V, C);
        cpu.embeddingBackward(dTable.cpu(), ids.cpu(), dOut.cpu());
        fp32.embeddingBackward(dTable.gpu(), ids.gpu(), dOut.gpu());
        assertClose("embedding backward", cpu, fp32, dTable, 1e-5);

        Pair rows = ints(cpu, fp32, new int[] {5, 0, 32, 5}, 4);
        Pair gathered = floats(cpu, fp32, type, new float[4 * C], 4, C);
        cpu.gatherRows(gathered.cpu(), x.cpu(), rows.cpu());
        fp32.gatherRows(gathered.gpu(), x.gpu(), rows.gpu());
        assertClose("gatherRows", cpu, fp32, gathered, 0);
        cpu.gatherRowsBackward(dx.cpu(), gathered.cpu(), rows.cpu());
        fp32.gatherRowsBackward(dx.gpu(), gathered.gpu(), rows.gpu());
        assertClose("gatherRows backward", cpu, fp32, dx, t);
    }

    /** B = 3 rows: full, right-padded from 30, left-padded for 5; T odd and crossing a 64-row tile when T = 70. */
    @ParameterizedTest
    @CsvSource({
            "FP32, F32, 37, 4, 2, 16, 0", "FP32, F32, 37, 4, 2, 16, 9", "FP32, F32, 70, 2, 1, 64, 0",
            "FP32, BF16, 37, 4, 2, 16, 0", "FP32, BF16, 70, 4, 2, 64, 0", "FP32, BF16, 70, 2, 2, 128, 13",
            "BF16, F32, 70, 4, 1, 64, 0", "BF16, F32, 130, 2, 2, 32, 0", "FP32, F32, 21, 2, 1, 24, 0"})
    void causalGqaAttentionWithPaddingForwardAndBackward(Precision p, DType type, int T, int H, int KV, int D, int window) {
        CudaBackend g = gpu(p);
        SplittableRandom r = new SplittableRandom(4 + T + D);
        int B = 3;
        int[] maskv = new int[B * T];
        Arrays.fill(maskv, 1);
        for (int t = Math.min(30, T - 3); t < T; t++) maskv[T + t] = 0;
        for (int t = 0; t < 5; t++) maskv[2 * T + t] = 0;
        Pair mask = ints(cpu, g, maskv, B, T);
        Pair q = floats(cpu, g, type, randn(r, B * T * H * D, 1f), B, T, H * D);
        Pair k = floats(cpu, g, type, randn(r, B * T * KV * D, 1f), B, T, KV * D);
        Pair v = floats(cpu, g, type, randn(r, B * T * KV * D, 1f), B, T, KV * D);
        Pair out = floats(cpu, g, type, new float[B * T * H * D], B, T, H * D);
        Pair lse = floats(cpu, g, DType.F32, new float[B * H * T], B, H, T);
        cpu.attention(out.cpu(), lse.cpu(), q.cpu(), k.cpu(), v.cpu(), mask.cpu(), H, KV, window);
        g.attention(out.gpu(), lse.gpu(), q.gpu(), k.gpu(), v.gpu(), mask.gpu(), H, KV, window);
        boolean lowp = p == Precision.BF16 || type == DType.BF16;
        double t = lowp ? 3e-2 : 2e-5;
        assertClose("attention out", cpu, g, out, t);
        float[] lc = cpu.download(lse.cpu()), lg = g.download(lse.gpu());
        for (int i = 0; i < lc.length; i++) if (lc[i] == Float.NEGATIVE_INFINITY) assertEquals(lc[i], lg[i], "lse of a query with no key, " + i);
        float[] lcf = lc.clone(), lgf = lg.clone();
        for (int i = 0; i < lcf.length; i++) if (lcf[i] == Float.NEGATIVE_INFINITY) { lcf[i] = 0; lgf[i] = 0; }
        assertClose("attention lse", lcf, lgf, lowp ? 3e-2 : 2e-5);
        Pair dOut = floats(cpu, g, type, randn(r, B * T * H * D, 1f), B, T, H * D);
        Pair dq = floats(cpu, g, type, randn(r, B * T * H * D, 1f), B, T, H * D);
        Pair dk = floats(cpu, g, type, new float[B * T * KV * D], B, T, KV * D);
        Pair dv = floats(cpu, g, type, new float[B * T * KV * D], B, T, KV * D);
        cpu.attentionBackward(dq.cpu(), dk.cpu(), dv.cpu(), dOut.cpu(), out.cpu(), lse.cpu(), q.cpu(), k.cpu(), v.cpu(), mask.cpu(), H, KV, window);
        g.attentionBackward(dq.gpu(), dk.gpu(), dv.gpu(), dOut.gpu(), out.gpu(), lse.gpu(), q.gpu(), k.gpu(), v.gpu(), mask.gpu(), H, KV, window);
        double tb = lowp ? 5e-2 : 5e-5;
        assertClose("attention dq", cpu, g, dq, tb);
        assertClose("attention dk", cpu, g, dk, tb);
        assertClose("attention dv", cpu, g, dv, tb);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void logprobsEntropyAndLogSoftmax(DType type) {
        if (type == DType.I32) return;
        double t = type == DType.F32 ? 1e-5 : 8e-3;
        SplittableRandom r = new SplittableRandom(5);
        int N = 19, V = 1003;
        Pair z = floats(cpu, fp32, type, randn(r, N * V, 3f), N, V);
        Pair tg = ints(cpu, fp32, Gpu.ints(r, N, V), N);
        Pair lp = floats(cpu, fp32, DType.F32, new float[N], N), ent = floats(cpu, fp32, DType.F32, new float[N], N),
                lse = floats(cpu, fp32, DType.F32, new float[N], N);
        cpu.tokenLogprobs(lp.cpu(), ent.cpu(), lse.cpu(), z.cpu(), tg.cpu());
        fp32.tokenLogprobs(lp.gpu(), ent.gpu(), lse.gpu(), z.gpu(), tg.gpu());
        assertClose("logprobs", cpu, fp32, lp, 1e-5);
        assertClose("entropy", cpu, fp32, ent, 1e-5);
        assertClose("lse", cpu, fp32, lse, 1e-5);
        Pair dz = floats(cpu, fp32, type, randn(r, N * V, 0.1f), N, V);
        Pair dlp = floats(cpu, fp32, DType.F32, randn(r, N, 1f), N), dent = floats(cpu, fp32, DType.F32, randn(r, N, 1f), N);
        cpu.tokenLogprobsBackward(dz.cpu(), dlp.cpu(), dent.cpu(), z.cpu(), lse.cpu(), ent.cpu(), tg.cpu());
        fp32.tokenLogprobsBackward(dz.gpu(), dlp.gpu(), dent.gpu(), z.gpu(), lse.gpu(), ent.gpu(), tg.gpu());
        assertClose("logprobs backward", cpu, fp32, dz, t);
        Pair ls = floats(cpu, fp32, type, new float[N * V], N, V);
        cpu.logSoftmax(ls.cpu(), z.cpu());
        fp32.logSoftmax(ls.gpu(), z.gpu());
        assertClose("logSoftmax", cpu, fp32, ls, t);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void adamwAsTorch(DType paramType) {
        if (paramType == DType.I32) return;
        SplittableRandom r = new SplittableRandom(6);
        int n = 1001;
        Pair param = floats(cpu, fp32, paramType, randn(r, n, 1f), n), grad = floats(cpu, fp32, DType.F32, randn(r, n, 1f), n);
        Pair m = floats(cpu, fp32, DType.F32, randn(r, n, 0.1f), n), v = floats(cpu, fp32, DType.F32, new float[n], n);
        for (int step = 1; step <= 3; step++) {
            AdamWStep s = new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, step);
            cpu.adamw(param.cpu(), grad.cpu(), m.cpu(), v.cpu(), s);
            fp32.adamw(param.gpu(), grad.gpu(), m.gpu(), v.gpu(), s);
        }
        assertClose("adamw param", cpu, fp32, param, paramType == DType.F32 ? 1e-6 : 4e-3);
        assertClose("adamw m", cpu, fp32, m, 1e-6);
        assertClose("adamw v", cpu, fp32, v, 1e-6);
    }

    /** Caches [B, S, KV * D]: vectorized kernel for F32 D 16, BF16 D 64 and 128; the simple one for D 24. */
    @ParameterizedTest
    @CsvSource({"F32, 4, 2, 16, 0", "BF16, 4, 4, 64, 0", "BF16, 8, 2, 128, 5", "F32, 2, 1, 24, 0", "BF16, 12, 2, 64, 0"})
    void kvCacheAppendAndDecodeAttention(DType cacheType, int H, int KV, int D, int window) {
        SplittableRandom r = new SplittableRandom(7 + D);
        int B = 3, S = 40, Tp = 29;
        Pair kc = floats(cpu, fp32, cacheType, new float[B * S * KV * D], B, S, KV * D);
        Pair vc = floats(cpu, fp32, cacheType, new float[B * S * KV * D], B, S, KV * D);
        Pair cm = ints(cpu, fp32, new int[B * S], B, S);
        Pair zero = ints(cpu, fp32, new int[B], B);
        Pair kx = floats(cpu, fp32, DType.F32, randn(r, B * Tp * KV * D, 1f), B, Tp, KV * D);
        Pair vx = floats(cpu, fp32, DType.F32, randn(r, B * Tp * KV * D, 1f), B, Tp, KV * D);
        int[] pm = new int[B * Tp];
        Arrays.fill(pm, 1);
        for (int t = 0; t < 7; t++) pm[Tp + t] = 0;  // a left-padded prompt
        Pair promptMask = ints(cpu, fp32, pm, B, Tp);
        for (var pair : new Pair[][] {{kc, kx}, {vc, vx}, {cm, promptMask}}) {
            cpu.kvAppend(pair[0].cpu(), pair[1].cpu(), zero.cpu());
            fp32.kvAppend(pair[0].gpu(), pair[1].gpu(), zero.gpu());
        }
        assertClose("kvAppend", cpu, fp32, kc, cacheType == DType.F32 ? 0 : 4e-3);
        assertArrayEquals(cpu.downloadInts(cm.cpu()), fp32.downloadInts(cm.gpu()), "kvAppend of the mask");
        Pair slots = ints(cpu, fp32, new int[] {Tp, Tp, Tp}, B);
        Pair ones = ints(cpu, fp32, new int[] {1, 1, 1}, B, 1);
        Pair q = floats(cpu, fp32, DType.F32, randn(r, B * H * D, 1f), B, H * D);
        Pair k1 = floats(cpu, fp32, DType.F32, randn(r, B * KV * D, 1f), B, KV * D);
        Pair out = floats(cpu, fp32, DType.F32, new float[B * H * D], B, H * D);
        for (var pair : new Pair[][] {{kc, k1}, {vc, k1}, {cm, ones}}) {
            cpu.kvAppend(pair[0].cpu(), pair[1].cpu(), slots.cpu());
            fp32.kvAppend(pair[0].gpu(), pair[1].gpu(), slots.gpu());
        }
        cpu.decodeAttention(out.cpu(), q.cpu(), kc.cpu(), vc.cpu(), cm.cpu(), slots.cpu(), H, KV, window);
        fp32.decodeAttention(out.gpu(), q.gpu(), kc.gpu(), vc.gpu(), cm.gpu(), slots.gpu(), H, KV, window);
        assertClose("decodeAttention", cpu, fp32, out, 2e-5);
    }

    /** A prefill pass of two sequences fills rows 1 and 2 of a three-row cache (float caches and the I32 mask). */
    @ParameterizedTest
    @CsvSource({"F32", "BF16"})
    void kvAppendFromAFirstRow(DType cacheType) {
        SplittableRandom r = new SplittableRandom(11);
        int B = 3, S = 9, Tn = 4, C = 24, M = 2;
        Pair cache = floats(cpu, fp32, cacheType, randn(r, B * S * C, 1f), B, S, C);
        Pair mask = ints(cpu, fp32, new int[B * S], B, S);
        Pair x = floats(cpu, fp32, DType.F32, randn(r, M * Tn * C, 1f), M, Tn, C);
        int[] ones = new int[M * Tn];
        Arrays.fill(ones, 1);
        Pair xm = ints(cpu, fp32, ones, M, Tn);
        Pair slots = ints(cpu, fp32, new int[] {0, 5}, M);
        cpu.kvAppend(cache.cpu(), x.cpu(), slots.cpu(), 1);
        fp32.kvAppend(cache.gpu(), x.gpu(), slots.gpu(), 1);
        cpu.kvAppend(mask.cpu(), xm.cpu(), slots.cpu(), 1);
        fp32.kvAppend(mask.gpu(), xm.gpu(), slots.gpu(), 1);
        assertClose("kvAppend from row 1", cpu, fp32, cache, 0);
        assertArrayEquals(cpu.downloadInts(mask.cpu()), fp32.downloadInts(mask.gpu()), "kvAppend of the mask from row 1");
    }

    @ParameterizedTest
    @CsvSource({"0, 0, 1", "1, 0, 1", "0.7, 0, 1", "1, 20, 1", "1, 0, 0.9", "0.8, 50, 0.5", "1.3, 1, 1", "1, 0, 0.05"})
    void samplingPicksTheCpuBackendsTokens(float temperature, int topK, float topP) {
        SplittableRandom r = new SplittableRandom(8);
        int B = 16, V = 5003;
        float[] logits = randn(r, B * V, 2f);
        for (int j = 0; j < 40; j++) logits[3 * V + j] = 4f;  // ties in row 3
        for (DType type : new DType[] {DType.F32, DType.BF16}) {
            Pair z = floats(cpu, fp32, type, logits, B, V);
            int[] fin = new int[B];
            fin[5] = 1;
            Pair finished = ints(cpu, fp32, fin, B);
            int[] ids = new int[B], st = new int[B];
            for (int b = 0; b < B; b++) { ids[b] = 100 + b; st[b] = 3 * b; }
            Pair seqIds = ints(cpu, fp32, ids, B), steps = ints(cpu, fp32, st, B);
            Pair tokens = ints(cpu, fp32, new int[B], B);
            int[] eos = {7, 11};
            SamplingParams sp = new SamplingParams(temperature, topK, topP);
            for (long seed : new long[] {0L, 12345L, -9L}) {
                cpu.sample(tokens.cpu(), z.cpu(), finished.cpu(), seqIds.cpu(), steps.cpu(), seed, sp, eos, 0);
                fp32.sample(tokens.gpu(), z.gpu(), finished.gpu(), seqIds.gpu(), steps.gpu(), seed, sp, eos, 0);
                assertArrayEquals(cpu.downloadInts(tokens.cpu()), fp32.downloadInts(tokens.gpu()),
                        "tokens for " + sp + " seed " + seed + " " + type);
                assertArrayEquals(cpu.downloadInts(finished.cpu()), fp32.downloadInts(finished.gpu()), "finished");
            }
        }
    }

    @Test
    void aCapturedStepReplaysLikeTheEagerOne() {
        SplittableRandom r = new SplittableRandom(9);
        int N = 8, C = 64;
        CudaBackend g = bf16;
        var x = g.allocate(DType.F32, N, C);
        var w = g.allocate(DType.F32, C, C);
        var y = g.allocate(DType.F32, N, C);
        var counter = g.allocate(DType.I32, 1);
        float[] xv = randn(r, N * C, 1f), wv = randn(r, C * C, 0.1f);
        g.upload(x, xv);
        g.upload(w, wv);
        Runnable step = g.capturable(() -> {
            g.matmul(y, x, w, null);
            g.add(x, x, y);
            g.addInt(counter, 1);
        });
        for (int i = 0; i < 3; i++) step.run();
        float[] replayed = g.download(x);
        // the same three steps eagerly
        g.upload(x, xv);
        for (int i = 0; i < 3; i++) {
            g.matmul(y, x, w, null);
            g.add(x, x, y);
        }
        assertClose("replayed steps", g.download(x), replayed, 1e-6);
        assertArrayEquals(new int[] {3}, g.downloadInts(counter));
        // a weight changed between replays is seen by the next replay (its bf16 copy is refreshed)
        g.scale(w, 0f);
        g.upload(x, xv);
        step.run();
        assertClose("replay after the weight changed", xv, g.download(x), 0);
    }
}
