package org.sparkrlhf.gpuexec.backend.cpu;

import java.util.Arrays;

/**
 * Causal grouped-query attention with a key padding mask, forward and backward, and the decode
 * variant over a KV cache. Softmax is computed exactly (two passes over the scores); the forward
 * keeps only each query's log-sum-exp and the backward recomputes the probabilities from it.
 */
final class Attention {
    private Attention() {
    }

    private static boolean allowed(int query, int key, int[] mask, int maskRow, int window) {
        return key <= query && mask[maskRow + key] != 0 && (window <= 0 || query - key < window);
    }

    static void forward(float[] out, float[] lse, float[] q, float[] k, float[] v, int[] mask,
                        int B, int T, int H, int KV, int D, int window, Parallel par) {
        int group = H / KV;
        int qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        par.range(B * H, (long) T * T * D, (lo, hi) -> {
            float[] scores = new float[T];
            for (int bh = lo; bh < hi; bh++) {
                int b = bh / H, h = bh % H, kh = h / group;
                for (int t = 0; t < T; t++) {
                    int qo = (b * T + t) * qStride + h * D;
                    int oo = qo;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        if (!allowed(t, j, mask, b * T, window)) continue;
                        int ko = (b * T + j) * kvStride + kh * D;
                        float s = 0f;
                        for (int d = 0; d < D; d++) s += q[qo + d] * k[ko + d];
                        s *= scale;
                        scores[j] = s;
                        if (s > max) max = s;
                    }
                    Arrays.fill(out, oo, oo + D, 0f);
                    int li = (b * H + h) * T + t;
                    if (max == Float.NEGATIVE_INFINITY) {
                        lse[li] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    float sum = 0f;
                    for (int j = 0; j <= t; j++) {
                        if (!allowed(t, j, mask, b * T, window)) continue;
                        float p = (float) Math.exp(scores[j] - max);
                        scores[j] = p;
                        sum += p;
                    }
                    float inv = 1f / sum;
                    for (int j = 0; j <= t; j++) {
                        if (!allowed(t, j, mask, b * T, window)) continue;
                        float p = scores[j] * inv;
                        int vo = (b * T + j) * kvStride + kh * D;
                        for (int d = 0; d < D; d++) out[oo + d] += p * v[vo + d];
                    }
                    lse[li] = max + (float) Math.log(sum);
                }
            }
        });
    }

    /** Parallel over (batch, kv head) so that the query heads sharing a kv head add into dk, dv in turn. */
    static void backward(float[] dq, float[] dk, float[] dv, float[] dOut, float[] out, float[] lse,
                         float[] q, float[] k, float[] v, int[] mask,
                         int B, int T, int H, int KV, int D, int window, Parallel par) {
        int group = H / KV;
        int qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        par.range(B * KV, (long) group * T * T * D * 3, (lo, hi) -> {
            for (int bk = lo; bk < hi; bk++) {
                int b = bk / KV, kh = bk % KV;
                for (int h = kh * group; h < (kh + 1) * group; h++) {
                    for (int t = 0; t < T; t++) {
                        float l = lse[(b * H + h) * T + t];
                        if (l == Float.NEGATIVE_INFINITY) continue;
                        int qo = (b * T + t) * qStride + h * D;
                        float delta = 0f;
                        for (int d = 0; d < D; d++) delta += dOut[qo + d] * out[qo + d];
                        for (int j = 0; j <= t; j++) {
                            if (!allowed(t, j, mask, b * T, window)) continue;
                            int ko = (b * T + j) * kvStride + kh * D;
                            float s = 0f, dp = 0f;
                            for (int d = 0; d < D; d++) {
                                s += q[qo + d] * k[ko + d];
                                dp += dOut[qo + d] * v[ko + d];
                            }
                            float p = (float) Math.exp(s * scale - l);
                            float ds = p * (dp - delta) * scale;
                            for (int d = 0; d < D; d++) {
                                dq[qo + d] += ds * k[ko + d];
                                dk[ko + d] += ds * q[qo + d];
                                dv[ko + d] += p * dOut[qo + d];
                            }
                        }
                    }
                }
            }
        });
    }

    static void decode(float[] out, float[] q, float[] kc, float[] vc, int[] cacheMask, int[] slots,
                       int B, int S, int H, int KV, int D, int window, Parallel par) {
        int group = H / KV;
        int qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        par.range(B * H, (long) S * D * 2, (lo, hi) -> {
            float[] scores = new float[S];
            for (int bh = lo; bh < hi; bh++) {
                int b = bh / H, h = bh % H, kh = h / group;
                int t = slots[b];
                if (t < 0 || t >= S) {
                    throw new IllegalArgumentException("decode slot " + t + " of sequence " + b + " outside the cache of " + S);
                }
                int qo = b * qStride + h * D;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= t; j++) {
                    if (!allowed(t, j, cacheMask, b * S, window)) continue;
                    int ko = (b * S + j) * kvStride + kh * D;
                    float s = 0f;
                    for (int d = 0; d < D; d++) s += q[qo + d] * kc[ko + d];
                    s *= scale;
                    scores[j] = s;
                    if (s > max) max = s;
                }
                Arrays.fill(out, qo, qo + D, 0f);
                if (max == Float.NEGATIVE_INFINITY) continue;
                float sum = 0f;
                for (int j = 0; j <= t; j++) {
                    if (!allowed(t, j, cacheMask, b * S, window)) continue;
                    float p = (float) Math.exp(scores[j] - max);
                    scores[j] = p;
                    sum += p;
                }
                float inv = 1f / sum;
                for (int j = 0; j <= t; j++) {
                    if (!allowed(t, j, cacheMask, b * S, window)) continue;
                    float p = scores[j] * inv;
                    int vo = (b * S + j) * kvStride + kh * D;
                    for (int d = 0; d < D; d++) out[qo + d] += p * vc[vo + d];
                }
            }
        });
    }
}
