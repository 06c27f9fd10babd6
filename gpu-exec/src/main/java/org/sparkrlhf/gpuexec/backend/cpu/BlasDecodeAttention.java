package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

import java.util.Arrays;

/**
 * The fast kernels' decode attention (one query per sequence over its KV cache) on OpenBLAS: per
 * (sequence, kv head), the scores of each of its query heads over the cached keys as a
 * matrix-vector product (scale K q, K read in place from the cache's native mirror with a row
 * stride; sgemv, as sgemm's set-up costs more than the work at these sizes), the masked softmax
 * in Java, then V^T p into the output. The caches stay native between steps: kvAppend
 * writes each step's new rows into the mirrors as well (see {@link CpuTensor#writeThrough}), so
 * nothing of the cache is copied per step. Same definition as {@link Attention#decode}.
 */
final class BlasDecodeAttention {
    private final Parallel par;
    private final NativeScratch out = new NativeScratch();
    /** Per block of the parallel loop: the group's scores in native memory, and its Java scratch. */
    private final NativeScratch[] nScores;
    private final Block[] blocks;

    private static final class Block {
        float[] s = new float[0], r = s, tmp = s, keep = s;

        void size(int group, int S) {
            if (s.length < group * S) s = new float[group * S];
            if (r.length < S) {
                r = new float[S];
                tmp = new float[S];
                keep = new float[S];
            }
        }
    }

    BlasDecodeAttention(Parallel par) {
        this.par = par;
        int n = par.threads();
        nScores = new NativeScratch[n];
        blocks = new Block[n];
        for (int i = 0; i < n; i++) {
            nScores[i] = new NativeScratch();
            blocks[i] = new Block();
        }
    }

    void decode(CpuTensor outT, CpuTensor qT, CpuTensor kT, CpuTensor vT, int[] cacheMask, int[] slots,
                int B, int S, int H, int KV, int D, int window) {
        for (int b = 0; b < B; b++) {
            if (slots[b] < 0 || slots[b] >= S) {
                throw new IllegalArgumentException("decode slot " + slots[b] + " of sequence " + b + " outside the cache of " + S);
            }
        }
        int group = H / KV, qStride = H * D, kvStride = KV * D;
        float scale = (float) (1.0 / Math.sqrt(D));
        FloatPointer qs = qT.nativeMirror(), ks = kT.nativeMirror(), vs = vT.nativeMirror();
        float[] o = outT.write();
        FloatPointer os = out.get(o.length);
        par.parts(B * KV, (part, lo, hi) -> {
            FloatPointer sn = nScores[part].get((long) group * S);
            Block w = blocks[part];
            w.size(group, S);
            float[] s = w.s, r = w.r, tmp = w.tmp, keep = w.keep;
            for (int bk = lo; bk < hi; bk++) {
                int b = bk / KV, kh = bk % KV, t = slots[b], m = b * S;
                int j0 = window > 0 ? Math.max(0, t - window + 1) : 0, n = t + 1 - j0;
                long qo = (long) b * qStride + (long) kh * group * D, ko = ((long) m + j0) * kvStride + (long) kh * D;
                // scores [g, n] = scale K [n, D] q_g, per query head of the group
                FloatPointer k = ks.getPointer(ko);
                for (int g = 0; g < group; g++) {
                    OpenBlas.sgemv(false, n, D, scale, k, kvStride, qs.getPointer(qo + (long) g * D), 0f, sn.getPointer((long) g * n));
                }
                sn.get(s, 0, group * n);
                boolean any = false;
                for (int i = 0; i < n; i++) {
                    keep[i] = cacheMask[m + j0 + i] != 0 ? 1f : 0f;
                    any |= keep[i] != 0f;
                }
                for (int g = 0; g < group; g++) {
                    int row = g * n;
                    if (!any) {
                        // no key allowed: zero weights give a zero output, as in the reference
                        Arrays.fill(s, row, row + n, 0f);
                        continue;
                    }
                    float max = Float.NEGATIVE_INFINITY;
                    for (int i = 0; i < n; i++) if (keep[i] != 0f && s[row + i] > max) max = s[row + i];
                    System.arraycopy(s, row, r, 0, n);
                    FastExp.expInPlace(r, n, max, tmp);
                    for (int i = 0; i < n; i++) r[i] *= keep[i];
                    float inv = 1f / FastExp.sum(r, 0, n);
                    for (int i = 0; i < n; i++) r[i] *= inv;
                    System.arraycopy(r, 0, s, row, n);
                }
                // out_g [D] = V^T [D, n] p_g, per query head of the group
                sn.put(s, 0, group * n);
                FloatPointer v = vs.getPointer(ko);
                for (int g = 0; g < group; g++) {
                    OpenBlas.sgemv(true, n, D, 1f, v, kvStride, sn.getPointer((long) g * n), 0f, os.getPointer(qo + (long) g * D));
                }
            }
        });
        os.get(o, 0, o.length);
    }

    void close() {
        out.free();
        for (NativeScratch s : nScores) s.free();
    }
}
