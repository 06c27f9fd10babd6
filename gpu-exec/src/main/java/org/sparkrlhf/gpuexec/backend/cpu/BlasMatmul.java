package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The products on OpenBLAS's sgemm. Operands are read from the tensors' native mirrors (see
 * {@link CpuTensor#nativeMirror}), copied only after a tensor was written: a weight once per
 * optimizer step, an input once for its forward products (q, k and v share it) and its backward
 * ones. Gradients are accumulated by sgemm itself (beta = 1, or 0 on a freshly zeroed gradient)
 * into the mirrors of dIn and dWeight, which stay native until an op reads them (see
 * {@link CpuTensor#nativeForUpdate}). With several
 * threads a product is cut into one block per thread, each one single-threaded sgemm: blocks of
 * the output's rows or of its columns, whichever leaves the smaller operand to be read (and
 * packed by OpenBLAS) by every block (rows: all of the right-hand operand; columns: all of the
 * left-hand one). A forward over few rows computes out^T = W in^T and transposes it back:
 * OpenBLAS streams the weight about 1.5x faster that way round (measured on its Zen kernels).
 */
final class BlasMatmul implements Matmul {
    /** Most rows for which a forward computes out^T = W in^T (decode steps). */
    private static final int FEW_ROWS = 32;
    /** A thread's block of out^T on its way back to out (grown to the largest block). */
    private static final ThreadLocal<float[]> TRANSPOSED = ThreadLocal.withInitial(() -> new float[0]);

    private final Parallel par;
    private final NativeScratch c = new NativeScratch();

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
        FloatPointer w = weight.nativeMirror(), ap = in.nativeMirror();
        FloatPointer cp = c.get((long) N * OC);
        float[] o = out.write();
        if (N <= FEW_ROWS) {
            // out^T [OC, N] = W [OC, IC] in^T, in blocks of weight rows, then transposed into out
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
                FloatPointer cb = cp.getPointer((long) r0 * OC);
                OpenBlas.sgemm(false, true, rows, OC, IC, 1f, ap.getPointer((long) r0 * IC), IC, w, IC, 0f, cb, OC);
                cb.get(o, r0 * OC, rows * OC);
                addBias(o, bias, r0, r1, OC);
            });
        } else {
            par.blocks(OC, (c0, c1) -> OpenBlas.sgemm(false, true, N, c1 - c0, IC, 1f, ap, IC,
                    w.getPointer((long) c0 * IC), IC, 0f, cp.getPointer(c0), OC));
            cp.get(o, 0, N * OC);
            addBias(o, bias, 0, N, OC);
        }
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
        FloatPointer gp = dOut.nativeMirror();
        if (dIn != null) {
            // dIn [N, IC] += dOut [N, OC] @ W [OC, IC]
            FloatPointer w = weight.nativeMirror();
            CpuTensor.NativeTarget t = dIn.nativeForUpdate();
            FloatPointer dx = t.c();
            float beta = t.beta();
            if (rowBlocks(N, IC)) {
                par.blocks(N, (r0, r1) -> OpenBlas.sgemm(false, false, r1 - r0, IC, OC, 1f, gp.getPointer((long) r0 * OC), OC,
                        w, IC, beta, dx.getPointer((long) r0 * IC), IC));
            } else {
                par.blocks(IC, (c0, c1) -> OpenBlas.sgemm(false, false, N, c1 - c0, OC, 1f, gp, OC,
                        w.getPointer(c0), IC, beta, dx.getPointer(c0), IC));
            }
        }
        if (dWeight != null) {
            // dW [OC, IC] += dOut^T [OC, N] @ in [N, IC]
            FloatPointer x = in.nativeMirror();
            if (N == 0) return; // a product over no rows leaves dW as it is (and must not overwrite pending zeros)
            CpuTensor.NativeTarget t = dWeight.nativeForUpdate();
            FloatPointer dw = t.c();
            float beta = t.beta();
            if (rowBlocks(OC, IC)) {
                par.blocks(OC, (o0, o1) -> OpenBlas.sgemm(true, false, o1 - o0, IC, N, 1f, gp.getPointer(o0), OC,
                        x, IC, beta, dw.getPointer((long) o0 * IC), IC));
            } else {
                par.blocks(IC, (c0, c1) -> OpenBlas.sgemm(true, false, OC, c1 - c0, N, 1f, gp, OC,
                        x.getPointer(c0), IC, beta, dw.getPointer(c0), IC));
            }
        }
    }

    @Override
    public void close() {
        c.free();
    }
}
