package org.sparkrlhf.gpuexec.backend.cpu;

import java.util.Arrays;

/**
 * The fast kernels' decode attention (one query per sequence over its KV cache), in Java: the
 * cache stays where it is (staging it for a library would copy all of it every step), and the
 * scores of four keys are summed at once, so that four independent sums keep the floating-point
 * units busy where one dot product at a time waits on each add. Same definition as
 * {@link Attention#decode}.
 */
final class FastDecodeAttention {
    private FastDecodeAttention() {
    }

    static void decode(float[] out, float[] q, float[] kc, float[] vc, int[] cacheMask, int[] slots,
                       int B, int S, int H, int KV, int D, int window, Parallel par) {
        int group = H / KV;
        int qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        for (int b = 0; b < B; b++) {
            if (slots[b] < 0 || slots[b] >= S) {
                throw new IllegalArgumentException("decode slot " + slots[b] + " of sequence " + b + " outside the cache of " + S);
            }
        }
        par.range(B * H, (long) S * D * 2, (lo, hi) -> {
            float[] scores = new float[S], keep = new float[S], r = new float[S], kk = new float[S], tmp = new float[S];
            float[] acc = new float[D], row = new float[D];
            for (int bh = lo; bh < hi; bh++) {
                int b = bh / H, h = bh % H, kh = h / group;
                int t = slots[b], m = b * S;
                int qo = b * qStride + h * D;
                int j0 = window > 0 ? Math.max(0, t - window + 1) : 0, n = t + 1 - j0;
                int j = j0;
                for (; j + 4 <= t + 1; j += 4) {
                    int k0 = (m + j) * kvStride + kh * D, k1 = k0 + kvStride, k2 = k1 + kvStride, k3 = k2 + kvStride;
                    float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                    for (int d = 0; d < D; d++) {
                        float x = q[qo + d];
                        s0 += x * kc[k0 + d];
                        s1 += x * kc[k1 + d];
                        s2 += x * kc[k2 + d];
                        s3 += x * kc[k3 + d];
                    }
                    scores[j] = s0 * scale;
                    scores[j + 1] = s1 * scale;
                    scores[j + 2] = s2 * scale;
                    scores[j + 3] = s3 * scale;
                }
                for (; j <= t; j++) {
                    int k0 = (m + j) * kvStride + kh * D;
                    float s0 = 0f;
                    for (int d = 0; d < D; d++) s0 += q[qo + d] * kc[k0 + d];
                    scores[j] = s0 * scale;
                }
                float max = Float.NEGATIVE_INFINITY;
                for (j = j0; j <= t; j++) {
                    keep[j] = cacheMask[m + j] != 0 ? 1f : 0f;
                    if (keep[j] != 0f && scores[j] > max) max = scores[j];
                }
                Arrays.fill(out, qo, qo + D, 0f);
                if (max == Float.NEGATIVE_INFINITY) continue;
                System.arraycopy(scores, j0, r, 0, n);
                FastExp.expInPlace(r, n, max, tmp);
                System.arraycopy(keep, j0, kk, 0, n);
                for (int i = 0; i < n; i++) r[i] *= kk[i];
                System.arraycopy(r, 0, scores, j0, n);
                float inv = 1f / FastExp.sum(scores, j0, n);
                // out += p_j v_j, summed in acc from index 0 so that the JIT vectorises it
                Arrays.fill(acc, 0f);
                for (j = j0; j <= t; j++) {
                    float p = scores[j] * inv;
                    if (p == 0f) continue;
                    System.arraycopy(vc, (m + j) * kvStride + kh * D, row, 0, D);
                    for (int d = 0; d < D; d++) acc[d] += p * row[d];
                }
                System.arraycopy(acc, 0, out, qo, D);
            }
        });
    }
}
