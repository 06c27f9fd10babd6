package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The products on OpenBLAS's sgemm. A weight is read from its native mirror (copied once per
 * write of the weight, see {@link CpuTensor#nativeMirror}); activations and gradients are staged
 * through native scratch buffers, because JavaCPP would otherwise copy whole Java arrays in and
 * out on every call. With several threads a product is cut into one block per thread, each one
 * single-threaded sgemm: blocks of the output's rows or of its columns, whichever leaves the
 * smaller operand to be read (and packed by OpenBLAS) by every block (rows: all of the right-hand
 * operand; columns: all of the left-hand one). A forward over few rows computes out^T = W in^T
 * and transposes it back: OpenBLAS streams the weight about 1.5x faster that way round (measured
 * on its Zen kernels).
 */
final class BlasMatmul implements Matmul {
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

    /**
     * Whether a product C [m, n] = L [m, k] R [k, n] is cut into blocks of rows (each block reads
     * all of R, k x n) rather than of columns (each reads all of L, m x k).
     */
    private boolean rowBlocks(int m, int n) {
        return par.threads() == 1 || n <= m;
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
        } else if (rowBlocks(N, OC)) {
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
            if (rowBlocks(N, IC)) {
                par.blocks(N, (r0, r1) -> {
                    FloatPointer cb = cp.getPointer((long) r0 * IC);
                    OpenBlas.sgemm(false, false, r1 - r0, IC, OC, 1f, gp.getPointer((long) r0 * OC), OC, w, IC, 0f, cb, IC);
                    addInto(dx, r0 * IC, cb, (r1 - r0) * IC);
                });
            } else {
                par.blocks(IC, (c0, c1) -> OpenBlas.sgemm(false, false, N, c1 - c0, OC, 1f, gp, OC,
                        w.getPointer(c0), IC, 0f, cp.getPointer(c0), IC));
                par.blocks(N, (r0, r1) -> addInto(dx, r0 * IC, cp.getPointer((long) r0 * IC), (r1 - r0) * IC));
            }
        }
        if (dWeight != null) {
            // dW [OC, IC] += dOut^T [OC, N] @ in [N, IC]
            FloatPointer ap = a.get((long) N * IC);
            if (!isStaged(in)) ap.put(in.read(), 0, N * IC);
            markStaged(in);
            FloatPointer cp = c.get((long) OC * IC);
            float[] dw = dWeight.write();
            if (rowBlocks(OC, IC)) {
                par.blocks(OC, (o0, o1) -> {
                    FloatPointer cb = cp.getPointer((long) o0 * IC);
                    OpenBlas.sgemm(true, false, o1 - o0, IC, N, 1f, gp.getPointer(o0), OC, ap, IC, 0f, cb, IC);
                    addInto(dw, o0 * IC, cb, (o1 - o0) * IC);
                });
            } else {
                par.blocks(IC, (c0, c1) -> OpenBlas.sgemm(true, false, OC, c1 - c0, N, 1f, gp, OC,
                        ap.getPointer(c0), IC, 0f, cp.getPointer(c0), IC));
                par.blocks(OC, (o0, o1) -> addInto(dw, o0 * IC, cp.getPointer((long) o0 * IC), (o1 - o0) * IC));
            }
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
