package org.sparkrlhf.gpuexec.backend.cpu;

/**
 * The fast kernels' exp-bound ops (softmax over the vocabulary, SwiGLU), on {@link FastExp} and
 * loops the JIT vectorises: rows and blocks are copied into scratch arrays at index 0 first,
 * because the JIT leaves a loop scalar when two arrays are indexed at different offsets (they
 * might overlap). With the Vector API each step's arithmetic is one fused loop ({@link
 * VectorKernels}); without it, passes of {@link FastExp} and plain loops. Same definitions as the
 * reference code in {@link CpuBackend}, sums in a different order.
 */
final class FastKernels {
    /** Elements per step of the SwiGLU loops: their scratch stays in L1. */
    private static final int BLOCK = 1024;

    private FastKernels() {
    }

    /** out = log_softmax(z) per row of V. */
    static void logSoftmax(float[] out, float[] z, int N, int V, Parallel par) {
        par.range(N, V * 3L, (lo, hi) -> {
            float[] e = new float[V], zr = new float[V], tmp = new float[V];
            for (int n = lo; n < hi; n++) {
                int off = n * V;
                System.arraycopy(z, off, zr, 0, V);
                float l = logSumExp(zr, V, e, tmp);
                for (int j = 0; j < V; j++) zr[j] -= l;
                System.arraycopy(zr, 0, out, off, V);
            }
        });
    }

    /** log(sum(exp(zr))) over V values; leaves exp(zr - max) in e. */
    private static float logSumExp(float[] zr, int V, float[] e, float[] tmp) {
        float max = FastExp.max(zr, 0, V);
        System.arraycopy(zr, 0, e, 0, V);
        FastExp.expInPlace(e, V, max, tmp);
        return max + (float) Math.log(FastExp.sum(e, 0, V));
    }

    /**
     * Rows of a [N, V] float tensor, read from the heap array or straight from the native copy a
     * product wrote (the LM head's logits: reading them row by row there saves copying all N x V
     * into the array first).
     */
    interface Rows {
        void get(int offset, float[] dst, int n);

        static Rows of(float[] a) {
            return (off, dst, n) -> System.arraycopy(a, off, dst, 0, n);
        }

        static Rows of(java.nio.FloatBuffer b) {
            return (off, dst, n) -> b.get(off, dst, 0, n);
        }
    }

    /** Where rows of a [N, V] float tensor are written back: the heap array or the native copy. */
    interface RowSink {
        void put(int offset, float[] src, int n);

        static RowSink of(float[] a) {
            return (off, src, n) -> System.arraycopy(src, 0, a, off, n);
        }

        static RowSink of(java.nio.FloatBuffer b) {
            return (off, src, n) -> b.put(off, src, 0, n);
        }
    }

    static void tokenLogprobs(float[] lp, float[] entropy, float[] lse, Rows z, int[] targets, int N, int V, Parallel par) {
        par.range(N, V * 4L, (lo, hi) -> {
            float[] zr = new float[V], sums = new float[2];
            float[] e = FastExp.VECTOR ? null : new float[V], tmp = FastExp.VECTOR ? null : new float[V];
            for (int n = lo; n < hi; n++) {
                int off = n * V;
                if (targets[n] < 0 || targets[n] >= V) {
                    throw new IllegalArgumentException("tokenLogprobs: target id " + targets[n] + " at row " + n + " outside [0, " + V + ")");
                }
                z.get(off, zr, V);
                float max = FastExp.max(zr, 0, V);
                if (FastExp.VECTOR) {
                    // exp, its sum and the entropy's moment in one pass, exp never stored:
                    // H = -sum_j p_j (z_j - lse) = log(sum) - sum_j e_j (z_j - max) / sum
                    float sum;
                    if (entropy == null) {
                        sum = VectorKernels.expSum(zr, V, max);
                    } else {
                        VectorKernels.expSumAndMoment(zr, V, max, sums);
                        sum = sums[0];
                        entropy[n] = (float) Math.log(sum) - sums[1] / sum;
                    }
                    float l = max + (float) Math.log(sum);
                    lse[n] = l;
                    lp[n] = zr[targets[n]] - l;
                    continue;
                }
                System.arraycopy(zr, 0, e, 0, V);
                FastExp.expInPlace(e, V, max, tmp);
                float sum = FastExp.sum(e, 0, V);
                float l = max + (float) Math.log(sum);
                lse[n] = l;
                lp[n] = zr[targets[n]] - l;
                if (entropy != null) {
                    // H = -sum_j p_j log p_j with p_j = e_j / sum and log p_j = z_j - lse
                    for (int j = 0; j < V; j++) zr[j] -= l;
                    entropy[n] = -FastExp.dot(e, 0, zr, 0, V) / sum;
                }
            }
        });
    }

    /**
     * dz += the gradient of the rows' logprobs and entropies; dzIn gives dz's current rows, or is
     * null when they are zeros (pending, never written: no read then), and the sums go to dzOut.
     * Rows whose two upstream gradients are both zero are left as they are (or written as zeros).
     */
    static void tokenLogprobsBackward(Rows dzIn, RowSink dzOut, float[] dLogprobs, float[] dEntropy, Rows z, float[] lse,
                                      float[] entropy, int[] targets, int N, int V, Parallel par) {
        par.range(N, V * 4L, (lo, hi) -> {
            float[] p = new float[V], logp = new float[V], d = new float[V], tmp = new float[V];
            for (int n = lo; n < hi; n++) {
                float gl = dLogprobs == null ? 0f : dLogprobs[n];
                float ge = dEntropy == null ? 0f : dEntropy[n];
                int off = n * V;
                if (gl == 0f && ge == 0f) {
                    if (dzIn == null) {
                        java.util.Arrays.fill(d, 0f);
                        dzOut.put(off, d, V);
                    }
                    continue;
                }
                float l = lse[n];
                z.get(off, p, V);
                if (dzIn == null) java.util.Arrays.fill(d, 0f);
                else dzIn.get(off, d, V);
                if (FastExp.VECTOR) {
                    VectorKernels.logprobGradient(d, p, V, l, gl, ge, ge == 0f ? 0f : entropy[n]);
                } else if (ge == 0f) {
                    FastExp.expInPlace(p, V, l, tmp);
                    for (int j = 0; j < V; j++) d[j] -= gl * p[j];
                } else {
                    float h = entropy[n];
                    for (int j = 0; j < V; j++) logp[j] = p[j] - l;
                    FastExp.expInPlace(p, V, l, tmp);
                    for (int j = 0; j < V; j++) d[j] += -gl * p[j] - ge * p[j] * (logp[j] + h);
                }
                d[targets[n]] += gl;
                dzOut.put(off, d, V);
            }
        });
    }

    /** out = silu(gate) * up, block by block from and to the heap arrays or the native copies. */
    static void swiglu(RowSink out, Rows gate, Rows up, int length, Parallel par) {
        int blocks = (length + BLOCK - 1) / BLOCK;
        par.range(blocks, BLOCK * 4L, (lo, hi) -> {
            float[] x = new float[BLOCK], e = new float[BLOCK], u = new float[BLOCK], tmp = new float[BLOCK];
            for (int blk = lo; blk < hi; blk++) {
                int i0 = blk * BLOCK, n = Math.min(BLOCK, length - i0);
                gate.get(i0, x, n);
                up.get(i0, u, n);
                if (FastExp.VECTOR) {
                    VectorKernels.swiglu(e, x, u, n);
                } else {
                    System.arraycopy(x, 0, e, 0, n);
                    FastExp.expNegatedInPlace(e, n, tmp);
                    for (int i = 0; i < n; i++) e[i] = x[i] / (1f + e[i]) * u[i];
                }
                out.put(i0, e, n);
            }
        });
    }

    /**
     * dGate += dOut * up * s (1 + x (1 - s)), dUp += dOut * silu(x), s = sigmoid(x), x = gate;
     * dGateIn / dUpIn give the gradients' current values, or are null when they are zeros.
     */
    static void swigluBackward(Rows dGateIn, RowSink dGateOut, Rows dUpIn, RowSink dUpOut, Rows dOut, Rows gate, Rows up,
                               int length, Parallel par) {
        int blocks = (length + BLOCK - 1) / BLOCK;
        par.range(blocks, BLOCK * 6L, (lo, hi) -> {
            float[] x = new float[BLOCK], s = new float[BLOCK], u = new float[BLOCK], g = new float[BLOCK],
                    dg = new float[BLOCK], du = new float[BLOCK], tmp = new float[BLOCK];
            for (int blk = lo; blk < hi; blk++) {
                int i0 = blk * BLOCK, n = Math.min(BLOCK, length - i0);
                gate.get(i0, x, n);
                if (!FastExp.VECTOR) System.arraycopy(x, 0, s, 0, n);
                up.get(i0, u, n);
                dOut.get(i0, g, n);
                if (dGateIn == null) java.util.Arrays.fill(dg, 0, n, 0f);
                else dGateIn.get(i0, dg, n);
                if (dUpIn == null) java.util.Arrays.fill(du, 0, n, 0f);
                else dUpIn.get(i0, du, n);
                if (FastExp.VECTOR) {
                    VectorKernels.swigluBackward(dg, du, g, x, u, n);
                } else {
                    FastExp.expNegatedInPlace(s, n, tmp);
                    for (int i = 0; i < n; i++) {
                        float sg = 1f / (1f + s[i]);
                        du[i] += g[i] * x[i] * sg;
                        dg[i] += g[i] * u[i] * sg * (1f + x[i] * (1f - sg));
                    }
                }
                dGateOut.put(i0, dg, n);
                dUpOut.put(i0, du, n);
            }
        });
    }
}
