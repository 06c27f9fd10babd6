package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The fast kernels' causal attention, forward and backward, as matrix products per (sequence,
 * head) on OpenBLAS: scores S = scale Q K^T over all T x T pairs (the masked half costs less than
 * scalar dot products would), the masked softmax in Java, then P V; the backward recomputes P from
 * the saved log-sum-exp and forms dP = dO V^T, dS = P (dP - delta) scale, dQ += dS K,
 * dK += dS^T Q, dV += P^T dO. Q, K, V and the gradients are staged in native memory once per
 * call; heads are read in place with a row stride (lda = heads * D). Same definition, masks and
 * outputs as {@link Attention}.
 */
final class BlasAttention {
    private final Parallel par;
    private final NativeScratch q = new NativeScratch(), k = new NativeScratch(), v = new NativeScratch(),
            o = new NativeScratch(), dq = new NativeScratch(), dk = new NativeScratch(), dv = new NativeScratch();
    /** Per block of the parallel loop: T x T scores (and dP) in native memory and in Java. */
    private final NativeScratch[] nScores, nGrads;
    private final float[][] scores, grads;

    BlasAttention(Parallel par) {
        this.par = par;
        int n = par.threads();
        nScores = new NativeScratch[n];
        nGrads = new NativeScratch[n];
        for (int i = 0; i < n; i++) {
            nScores[i] = new NativeScratch();
            nGrads[i] = new NativeScratch();
        }
        scores = new float[n][];
        grads = new float[n][];
    }

    /** keep[j] = 1 and bias[j] = 0 for a key the mask keeps, else 0 and -infinity. */
    private static void keys(int[] mask, int maskRow, int T, float[] keep, float[] bias) {
        for (int j = 0; j < T; j++) {
            boolean on = mask[maskRow + j] != 0;
            keep[j] = on ? 1f : 0f;
            bias[j] = on ? 0f : Float.NEGATIVE_INFINITY;
        }
    }

    private float[] javaScratch(float[][] slots, int part, int size) {
        if (slots[part] == null || slots[part].length < size) slots[part] = new float[size];
        return slots[part];
    }

    void forward(float[] out, float[] lse, float[] qa, float[] ka, float[] va, int[] mask,
                 int B, int T, int H, int KV, int D, int window) {
        int group = H / KV, qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        FloatPointer qs = q.get(qa.length).put(qa, 0, qa.length);
        FloatPointer ks = k.get(ka.length).put(ka, 0, ka.length);
        FloatPointer vs = v.get(va.length).put(va, 0, va.length);
        FloatPointer os = o.get(out.length);
        par.parts(B * H, (part, lo, hi) -> {
            FloatPointer sn = nScores[part].get((long) T * T);
            float[] s = javaScratch(scores, part, T * T), keep = new float[T], bias = new float[T];
            float[] r = new float[T], kk = new float[T], tmp = new float[T];
            for (int bh = lo; bh < hi; bh++) {
                int b = bh / H, h = bh % H, kh = h / group;
                long qo = (long) b * T * qStride + (long) h * D, ko = (long) b * T * kvStride + (long) kh * D;
                OpenBlas.sgemm(false, true, T, T, D, scale, qs.getPointer(qo), qStride, ks.getPointer(ko), kvStride, 0f, sn, T);
                sn.get(s, 0, T * T);
                keys(mask, b * T, T, keep, bias);
                for (int t = 0; t < T; t++) {
                    int row = t * T, j0 = window > 0 ? Math.max(0, t - window + 1) : 0, n = t + 1 - j0;
                    System.arraycopy(s, row + j0, r, 0, n);
                    System.arraycopy(bias, j0, kk, 0, n);
                    for (int i = 0; i < n; i++) r[i] += kk[i];
                    float max = FastExp.max(r, 0, n);
                    int li = (b * H + h) * T + t;
                    java.util.Arrays.fill(s, row, row + T, 0f);
                    if (max == Float.NEGATIVE_INFINITY) {
                        lse[li] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    FastExp.expInPlace(r, n, max, tmp);
                    System.arraycopy(keep, j0, kk, 0, n);
                    for (int i = 0; i < n; i++) r[i] *= kk[i];
                    float sum = FastExp.sum(r, 0, n);
                    float inv = 1f / sum;
                    for (int i = 0; i < n; i++) r[i] *= inv;
                    System.arraycopy(r, 0, s, row + j0, n);
                    lse[li] = max + (float) Math.log(sum);
                }
                sn.put(s, 0, T * T);
                OpenBlas.sgemm(false, false, T, D, T, 1f, sn, T, vs.getPointer(ko), kvStride, 0f, os.getPointer(qo), qStride);
            }
        });
        os.get(out, 0, out.length);
    }

    /** Parallel over (sequence, kv head): the query heads sharing a kv head add into its dK, dV in turn. */
    void backward(float[] dqa, float[] dka, float[] dva, float[] dOut, float[] out, float[] lse,
                  float[] qa, float[] ka, float[] va, int[] mask, int B, int T, int H, int KV, int D, int window) {
        int group = H / KV, qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        FloatPointer qs = q.get(qa.length).put(qa, 0, qa.length);
        FloatPointer ks = k.get(ka.length).put(ka, 0, ka.length);
        FloatPointer vs = v.get(va.length).put(va, 0, va.length);
        FloatPointer gs = o.get(dOut.length).put(dOut, 0, dOut.length);
        FloatPointer dqs = dq.get(dqa.length).put(dqa, 0, dqa.length);
        FloatPointer dks = dk.get(dka.length).put(dka, 0, dka.length);
        FloatPointer dvs = dv.get(dva.length).put(dva, 0, dva.length);
        par.parts(B * KV, (part, lo, hi) -> {
            FloatPointer pn = nScores[part].get((long) T * T), gn = nGrads[part].get((long) T * T);
            float[] p = javaScratch(scores, part, T * T), dp = javaScratch(grads, part, T * T);
            float[] keep = new float[T], bias = new float[T], r = new float[T], kk = new float[T], tmp = new float[T];
            for (int bk = lo; bk < hi; bk++) {
                int b = bk / KV, kh = bk % KV;
                keys(mask, b * T, T, keep, bias);
                long ko = (long) b * T * kvStride + (long) kh * D;
                for (int h = kh * group; h < (kh + 1) * group; h++) {
                    long qo = (long) b * T * qStride + (long) h * D;
                    OpenBlas.sgemm(false, true, T, T, D, scale, qs.getPointer(qo), qStride, ks.getPointer(ko), kvStride, 0f, pn, T);
                    OpenBlas.sgemm(false, true, T, T, D, 1f, gs.getPointer(qo), qStride, vs.getPointer(ko), kvStride, 0f, gn, T);
                    pn.get(p, 0, T * T);
                    gn.get(dp, 0, T * T);
                    for (int t = 0; t < T; t++) {
                        int row = t * T, j0 = window > 0 ? Math.max(0, t - window + 1) : 0, n = t + 1 - j0;
                        float l = lse[(b * H + h) * T + t];
                        int oo = (b * T + t) * qStride + h * D;
                        float delta = FastExp.dot(dOut, oo, out, oo, D);
                        System.arraycopy(p, row + j0, r, 0, n);
                        java.util.Arrays.fill(p, row, row + T, 0f);
                        if (l != Float.NEGATIVE_INFINITY) {
                            FastExp.expInPlace(r, n, l, tmp);
                            System.arraycopy(keep, j0, kk, 0, n);
                            for (int i = 0; i < n; i++) r[i] *= kk[i];
                            System.arraycopy(r, 0, p, row + j0, n);
                        }
                        for (int j = 0; j < T; j++) dp[row + j] = p[row + j] * (dp[row + j] - delta) * scale;
                    }
                    pn.put(p, 0, T * T);
                    gn.put(dp, 0, T * T);
                    OpenBlas.sgemm(false, false, T, D, T, 1f, gn, T, ks.getPointer(ko), kvStride, 1f, dqs.getPointer(qo), qStride);
                    OpenBlas.sgemm(true, false, T, D, T, 1f, gn, T, qs.getPointer(qo), qStride, 1f, dks.getPointer(ko), kvStride);
                    OpenBlas.sgemm(true, false, T, D, T, 1f, pn, T, gs.getPointer(qo), qStride, 1f, dvs.getPointer(ko), kvStride);
                }
            }
        });
        dqs.get(dqa, 0, dqa.length);
        dks.get(dka, 0, dka.length);
        dvs.get(dva, 0, dva.length);
    }

    void close() {
        for (NativeScratch s : new NativeScratch[]{q, k, v, o, dq, dk, dv}) s.free();
        for (int i = 0; i < nScores.length; i++) {
            nScores[i].free();
            nGrads[i].free();
        }
    }
}
