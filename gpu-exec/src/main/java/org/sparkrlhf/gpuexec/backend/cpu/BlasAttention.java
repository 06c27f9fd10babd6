package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The fast kernels' causal attention, forward and backward, as matrix products per (sequence,
 * head) on OpenBLAS: scores S = scale Q K^T over all T x T pairs (the masked half costs less than
 * scalar dot products would), the masked softmax in Java over the whole T x T block at once (a
 * loop per row would spend more on its set-up than on its few keys), then P V; the backward
 * recomputes P from the saved log-sum-exp and forms dP = dO V^T, dS = P (dP - delta) scale,
 * dQ += dS K, dK += dS^T Q, dV += P^T dO. Q, K, V, dO and the gradients are read from and added
 * into the tensors' native mirrors (Q, K, V copied in once for the forward and the backward; dV
 * and dO stay native between the products next to attention); heads are read in place with a row
 * stride (lda = heads * D). Same definition,
 * masks and outputs as {@link Attention}. Scratch: five T x T floats per thread.
 */
final class BlasAttention {
    private final Parallel par;
    /** The output on its way to the Java array (its readers are Java ops). */
    private final NativeScratch o = new NativeScratch();
    /** Per block of the parallel loop: T x T scores (and dP) in native memory. */
    private final NativeScratch[] nScores, nGrads;
    /** Per block of the parallel loop: T x T scores, dP, the mask as 0/-inf and as 1/0, exp's scratch. */
    private final Block[] blocks;

    /** A thread's Java scratch; b is the sequence whose mask is in add and keep (-1: none). */
    private static final class Block {
        float[] s = new float[0], dp = s, add = s, keep = s, tmp = s, shift = s;
        int b = -1;

        void size(int T, int n) {
            if (shift.length < T) shift = new float[T];
            if (s.length < n) {
                s = new float[n];
                dp = new float[n];
                add = new float[n];
                keep = new float[n];
                tmp = new float[n];
            }
            b = -1;
        }

        /** add and keep of sequence b: key j is allowed for query t when j &lt;= t, unmasked and within the window. */
        void mask(int[] mask, int b, int T, int window) {
            if (this.b == b) return;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < T; j++) {
                    boolean on = j <= t && mask[b * T + j] != 0 && (window <= 0 || t - j < window);
                    keep[t * T + j] = on ? 1f : 0f;
                    add[t * T + j] = on ? 0f : Float.NEGATIVE_INFINITY;
                }
            }
            this.b = b;
        }
    }

    BlasAttention(Parallel par) {
        this.par = par;
        int n = par.threads();
        nScores = new NativeScratch[n];
        nGrads = new NativeScratch[n];
        blocks = new Block[n];
        for (int i = 0; i < n; i++) {
            nScores[i] = new NativeScratch();
            nGrads[i] = new NativeScratch();
            blocks[i] = new Block();
        }
    }

    void forward(CpuTensor outT, float[] lse, CpuTensor qT, CpuTensor kT, CpuTensor vT, int[] mask,
                 int B, int T, int H, int KV, int D, int window) {
        int group = H / KV, qStride = H * D, kvStride = KV * D, TT = T * T;
        float scale = (float) (1.0 / Math.sqrt(D));
        FloatPointer qs = qT.nativeMirror(), ks = kT.nativeMirror(), vs = vT.nativeMirror();
        float[] out = outT.write();
        FloatPointer os = o.get(out.length);
        par.parts(B * H, (part, lo, hi) -> {
            FloatPointer sn = nScores[part].get(TT);
            Block w = blocks[part];
            w.size(T, TT);
            float[] s = w.s, add = w.add, keep = w.keep, tmp = w.tmp, shift = w.shift;
            for (int bh = lo; bh < hi; bh++) {
                int b = bh / H, h = bh % H, kh = h / group;
                long qo = (long) b * T * qStride + (long) h * D, ko = (long) b * T * kvStride + (long) kh * D;
                OpenBlas.sgemm(false, true, T, T, D, scale, qs.getPointer(qo), qStride, ks.getPointer(ko), kvStride, 0f, sn, T);
                sn.get(s, 0, TT);
                w.mask(mask, b, T, window);
                int li = (b * H + h) * T;
                if (FastExp.VECTOR) {
                    for (int t = 0; t < T; t++) lse[li + t] = VectorKernels.softmaxRow(s, add, keep, t * T, T);
                } else {
                    softmax(s, add, keep, tmp, shift, lse, li, T);
                }
                sn.put(s, 0, TT);
                OpenBlas.sgemm(false, false, T, D, T, 1f, sn, T, vs.getPointer(ko), kvStride, 0f, os.getPointer(qo), qStride);
            }
        });
        os.get(out, 0, out.length);
    }

    /** Parallel over (sequence, kv head): the query heads sharing a kv head add into its dK, dV in turn. */
    void backward(CpuTensor dqT, CpuTensor dkT, CpuTensor dvT, CpuTensor dOutT, float[] out, float[] lse,
                  CpuTensor qT, CpuTensor kT, CpuTensor vT, int[] mask, int B, int T, int H, int KV, int D, int window) {
        int group = H / KV, qStride = H * D, kvStride = KV * D, TT = T * T;
        float scale = (float) (1.0 / Math.sqrt(D));
        FloatPointer qs = qT.nativeMirror(), ks = kT.nativeMirror(), vs = vT.nativeMirror();
        FloatPointer gs = dOutT.nativeMirror();
        float[] dOut = dOutT.read();
        // each head adds into its rows of dQ, dK, dV (beta = 1): a pending zeroing is written first
        FloatPointer dqs = dqT.nativeAccumulator(), dks = dkT.nativeAccumulator(), dvs = dvT.nativeAccumulator();
        par.parts(B * KV, (part, lo, hi) -> {
            FloatPointer pn = nScores[part].get(TT), gn = nGrads[part].get(TT);
            Block w = blocks[part];
            w.size(T, TT);
            float[] p = w.s, dp = w.dp, keep = w.keep, tmp = w.tmp;
            for (int bk = lo; bk < hi; bk++) {
                int b = bk / KV, kh = bk % KV;
                long ko = (long) b * T * kvStride + (long) kh * D;
                w.mask(mask, b, T, window);
                for (int h = kh * group; h < (kh + 1) * group; h++) {
                    long qo = (long) b * T * qStride + (long) h * D;
                    OpenBlas.sgemm(false, true, T, T, D, scale, qs.getPointer(qo), qStride, ks.getPointer(ko), kvStride, 0f, pn, T);
                    OpenBlas.sgemm(false, true, T, T, D, 1f, gs.getPointer(qo), qStride, vs.getPointer(ko), kvStride, 0f, gn, T);
                    pn.get(p, 0, TT);
                    gn.get(dp, 0, TT);
                    // P = exp(S - lse) on allowed keys; a query with no key (lse = -inf) has keep 0 on its whole row
                    if (FastExp.VECTOR) {
                        for (int t = 0; t < T; t++) {
                            float l = lse[(b * H + h) * T + t];
                            int oo = (b * T + t) * qStride + h * D;
                            VectorKernels.softmaxGradientRow(p, dp, keep, t * T, T, l == Float.NEGATIVE_INFINITY ? 0f : l,
                                    FastExp.dot(dOut, oo, out, oo, D), scale);
                        }
                    } else {
                        softmaxGradient(p, dp, keep, tmp, lse, dOut, out, b, h, H, T, D, qStride, scale);
                    }
                    pn.put(p, 0, TT);
                    gn.put(dp, 0, TT);
                    OpenBlas.sgemm(false, false, T, D, T, 1f, gn, T, ks.getPointer(ko), kvStride, 1f, dqs.getPointer(qo), qStride);
                    OpenBlas.sgemm(true, false, T, D, T, 1f, gn, T, qs.getPointer(qo), qStride, 1f, dks.getPointer(ko), kvStride);
                    OpenBlas.sgemm(true, false, T, D, T, 1f, pn, T, gs.getPointer(qo), qStride, 1f, dvs.getPointer(ko), kvStride);
                }
            }
        });
    }

    /** The scalar passes of {@link VectorKernels#softmaxRow} over all T rows of one head; lse from lse[li]. */
    private static void softmax(float[] s, float[] add, float[] keep, float[] tmp, float[] shift, float[] lse, int li, int T) {
        int TT = T * T;
        for (int i = 0; i < TT; i++) s[i] += add[i];
        for (int t = 0; t < T; t++) {
            int row = t * T;
            float max = FastExp.max(s, row, T);
            // a query with no key: its row is -inf, shifted by 0 it stays -inf and keep zeroes it
            float m = max == Float.NEGATIVE_INFINITY ? 0f : max;
            shift[t] = m;
            for (int j = row; j < row + T; j++) s[j] -= m;
        }
        FastExp.expInPlace(s, TT, 0f, tmp);
        for (int i = 0; i < TT; i++) s[i] *= keep[i];
        for (int t = 0; t < T; t++) {
            int row = t * T;
            float sum = FastExp.sum(s, row, T);
            if (sum == 0f) {
                lse[li + t] = Float.NEGATIVE_INFINITY;
                continue;
            }
            float inv = 1f / sum;
            for (int j = row; j < row + T; j++) s[j] *= inv;
            lse[li + t] = shift[t] + (float) Math.log(sum);
        }
    }

    /** The scalar passes of {@link VectorKernels#softmaxGradientRow} over all T rows of one head. */
    private static void softmaxGradient(float[] p, float[] dp, float[] keep, float[] tmp, float[] lse, float[] dOut,
                                        float[] out, int b, int h, int H, int T, int D, int qStride, float scale) {
        int TT = T * T;
        for (int t = 0; t < T; t++) {
            float l = lse[(b * H + h) * T + t];
            float m = l == Float.NEGATIVE_INFINITY ? 0f : l;
            int row = t * T;
            for (int j = row; j < row + T; j++) p[j] -= m;
        }
        FastExp.expInPlace(p, TT, 0f, tmp);
        for (int i = 0; i < TT; i++) p[i] *= keep[i];
        for (int t = 0; t < T; t++) {
            int row = t * T, oo = (b * T + t) * qStride + h * D;
            float delta = FastExp.dot(dOut, oo, out, oo, D);
            for (int j = row; j < row + T; j++) dp[j] = p[j] * (dp[j] - delta) * scale;
        }
    }

    void close() {
        o.free();
        for (int i = 0; i < nScores.length; i++) {
            nScores[i].free();
            nGrads[i].free();
            blocks[i] = new Block();
        }
    }
}
