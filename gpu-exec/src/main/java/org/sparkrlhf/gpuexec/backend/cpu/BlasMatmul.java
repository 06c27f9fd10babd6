package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The products on OpenBLAS's sgemm. A weight is read from its native mirror (copied once per
 * write of the weight, see {@link CpuTensor#nativeMirror}); activations and gradients are staged
 * through native scratch buffers, because JavaCPP would otherwise copy whole Java arrays in and
 * out on every call. A product is cut into as many blocks as the pool has threads: rows of the
 * output when there are enough of them, else columns (a decode step's few rows), each block one
 * single-threaded sgemm. A forward over few rows computes out^T = W in^T and transposes it back:
 * OpenBLAS streams the weight about 1.5x faster that way round (measured on its Zen kernels).
 */
final class BlasMatmul implements Matmul {
    /** Fewest output rows per thread for which blocks of rows beat blocks of columns. */
    private static final int MIN_ROWS = 32;
    /** Most rows for which a forward computes out^T = W in^T (decode steps). */
    private static final int FEW_ROWS = 32;
    /** Floats moved per step when adding a native result into a Java array. */
    private static final int ADD_BLOCK = 8192;
    private static final ThreadLocal<float[]> ADD_BUFFER = ThreadLocal.withInitial(() -> new float[ADD_BLOCK]);
    /** A thread's block of out^T on its way back to out (grown to the largest block). */
    private static final ThreadLocal<float[]> TRANSPOSED = ThreadLocal.withInitial(() -> new float[0]);

    private final Parallel par;
    private final NativeScratch a = new NativeScratch(), c = new NativeScratch(), g = new NativeScratch();
    /** The input whose values scratch a holds, and its version then: q, k and v (gate and up) share one. */
    private CpuTensor staged;
    private long stagedVersion;

    BlasMatmul(Parallel par) {
        this.par = par;
    }

    private boolean rowBlocks(int rows) {
        return par.threads() == 1 || rows >= MIN_ROWS * par.threads();
    }

    @Override
    public void forward(CpuTensor out, CpuTensor in, CpuTensor weight, float[] bias, int N, int IC, int OC) {
        FloatPointer w = weight.nativeMirror();
        boolean fresh = isStaged(in);
        FloatPointer ap = a.get((long) N * IC), cp = c.get((long) N * OC);
        float[] x = in.read(), o = out.write();
        if (N <= FEW_ROWS) {
            // out^T [OC, N] = W [OC, IC] in^T, in blocks of weight rows, then transposed into out
            if (!fresh) ap.put(x, 0, N * IC);
            par.blocks(OC, (c0, c1) -> {
                FloatPointer cb = cp.getPointer((long) c0 * N);
                OpenBlas.sgemm(false, true, c1 - c0, N, IC, 1f, w.getPointer((long) c0 * IC), IC, ap, IC, 0f, cb, N);
                float[] t = TRANSPOSED.get();
                int n = (c1 - c0) * N;
                if (t.length < n) TRANSPOSED.set(t = new float[n]);
                cb.get(t, 0, n);
                for (int r = 0; r < N; r++) {
                    int off = r * OC;
                    for (int j = c0; j < c1; j++) o[off + j] = t[(j - c0) * N + r];
                }
            });
            addBias(o, bias, 0, N, OC);
        } else if (rowBlocks(N)) {
            par.blocks(N, (r0, r1) -> {
                int rows = r1 - r0;
                FloatPointer ab = ap.getPointer((long) r0 * IC);
                if (!fresh) ab.put(x, r0 * IC, rows * IC);
                FloatPointer cb = cp.getPointer((long) r0 * OC);
                OpenBlas.sgemm(false, true, rows, OC, IC, 1f, ab, IC, w, IC, 0f, cb, OC);
                cb.get(o, r0 * OC, rows * OC);
                addBias(o, bias, r0, r1, OC);
            });
        } else {
            if (!fresh) ap.put(x, 0, N * IC);
            par.blocks(OC, (c0, c1) -> OpenBlas.sgemm(false, true, N, c1 - c0, IC, 1f, ap, IC,
                    w.getPointer((long) c0 * IC), IC, 0f, cp.getPointer(c0), OC));
            cp.get(o, 0, N * OC);
            addBias(o, bias, 0, N, OC);
        }
        markStaged(in);
    }

    /** Whether scratch a already holds in's current values. */
    private boolean isStaged(CpuTensor in) {
        return staged == in && stagedVersion == in.version();
    }

    private void markStaged(CpuTensor in) {
        staged = in;
        stagedVersion = in.version();
    }

    private static void addBias(float[] o, float[] bias, int r0, int r1, int OC) {
        if (bias == null) return;
        for (int r = r0; r < r1; r++) {
            int off = r * OC;
            for (int j = 0; j < OC; j++) o[off + j] += bias[j];
        }
    }

    @Override
    public void backward(CpuTensor dIn, CpuTensor dWeight, CpuTensor dOut, CpuTensor in, CpuTensor weight, int N, int IC, int OC) {
        FloatPointer gp = g.get((long) N * OC).put(dOut.read(), 0, N * OC);
        if (dIn != null) {
            // dIn [N, IC] += dOut [N, OC] @ W [OC, IC]
            FloatPointer w = weight.nativeMirror();
            FloatPointer cp = c.get((long) N * IC);
            float[] dx = dIn.write();
            if (rowBlocks(N)) {
                par.blocks(N, (r0, r1) -> {
                    FloatPointer cb = cp.getPointer((long) r0 * IC);
                    OpenBlas.sgemm(false, false, r1 - r0, IC, OC, 1f, gp.getPointer((long) r0 * OC), OC, w, IC, 0f, cb, IC);
                    addInto(dx, r0 * IC, cb, (r1 - r0) * IC);
                });
            } else {
                par.blocks(IC, (c0, c1) -> OpenBlas.sgemm(false, false, N, c1 - c0, OC, 1f, gp, OC,
                        w.getPointer(c0), IC, 0f, cp.getPointer(c0), IC));
                addInto(dx, 0, cp, N * IC);
            }
        }
        if (dWeight != null) {
            // dW [OC, IC] += dOut^T [OC, N] @ in [N, IC], in blocks of rows of dW
            FloatPointer ap = a.get((long) N * IC);
            if (!isStaged(in)) ap.put(in.read(), 0, N * IC);
            markStaged(in);
            FloatPointer cp = c.get((long) OC * IC);
            float[] dw = dWeight.write();
            par.blocks(OC, (o0, o1) -> {
                FloatPointer cb = cp.getPointer((long) o0 * IC);
                OpenBlas.sgemm(true, false, o1 - o0, IC, N, 1f, gp.getPointer(o0), OC, ap, IC, 0f, cb, IC);
                addInto(dw, o0 * IC, cb, (o1 - o0) * IC);
            });
        }
    }

    /** dst[off + i] += src[i] for i &lt; n, through a small per-thread Java buffer. */
    private static void addInto(float[] dst, int off, FloatPointer src, int n) {
        float[] buf = ADD_BUFFER.get();
        FloatPointer view = new FloatPointer(src);
        long base = src.position();
        for (int i = 0; i < n; i += ADD_BLOCK) {
            int len = Math.min(ADD_BLOCK, n - i);
            view.position(base + i).get(buf, 0, len);
            int d = off + i;
            for (int j = 0; j < len; j++) dst[d + j] += buf[j];
        }
    }

    @Override
    public void close() {
        staged = null;
        a.free();
        c.free();
        g.free();
    }
}
