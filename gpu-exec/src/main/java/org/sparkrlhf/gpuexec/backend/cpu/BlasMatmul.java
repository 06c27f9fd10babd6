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
 * left-hand one). Products that do not wait for each other run whole side by side instead (a
 * backward's dIn and dW; the q, k, v or gate, up products of one input): on two cores, two whole
 * 512 x 2048 x 768 products ran at about 160 GFLOP/s against 125-135 for each cut in two in turn,
 * whose halves both read and pack the same shared operand. A forward over few rows computes out^T = W in^T and transposes it back:
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
        Product p = forwardProduct(out, in.nativeMirror(), weight, bias, N, IC, OC, c.get((long) N * OC));
        int threads = par.threads();
        par.parts(threads, (part, lo, hi) -> p.block(part, threads));
    }

    /**
     * Products of one input side by side: with P products on T threads, the first P - P mod T go
     * whole to one thread each (q || k and v cut in two, gate || up on two threads), the rest cut
     * into T blocks; a decode step's few rows take the products one after the other, each cut.
     */
    @Override
    public void forward(CpuTensor[] outs, CpuTensor in, CpuTensor[] weights, float[][] biases, int N, int IC, int[] OC) {
        int P = outs.length, threads = par.threads();
        if (threads == 1 || N <= FEW_ROWS || P < threads) {
            Matmul.super.forward(outs, in, weights, biases, N, IC, OC);
            return;
        }
        FloatPointer ap = in.nativeMirror();
        long total = 0;
        for (int oc : OC) total += (long) N * oc;
        FloatPointer cp = c.get(total);
        Product[] ps = new Product[P];
        long at = 0;
        for (int i = 0; i < P; i++) {
            ps[i] = forwardProduct(outs[i], ap, weights[i], biases[i], N, IC, OC[i], cp.getPointer(at));
            at += (long) N * OC[i];
        }
        int whole = P - P % threads;
        par.parts(threads, (part, lo, hi) -> {
            for (int i = part; i < whole; i += threads) ps[i].block(0, 1);
            for (int i = whole; i < P; i++) ps[i].block(part, threads);
        });
    }

    /** out = in @ W^T + bias through native scratch cp [N, OC], as blocks (see the class comment). */
    private Product forwardProduct(CpuTensor out, FloatPointer ap, CpuTensor weight, float[] bias, int N, int IC, int OC,
                                   FloatPointer cp) {
        FloatPointer w = weight.nativeMirror();
        float[] o = out.write();
        if (N <= FEW_ROWS) {
            // out^T [OC, N] = W [OC, IC] in^T, in blocks of weight rows, then transposed into out
            return (i, of) -> {
                int c0 = cut(OC, i, of), c1 = cut(OC, i + 1, of);
                if (c0 == c1) return;
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
                addBias(o, bias, 0, N, c0, c1, OC);
            };
        }
        if (rowBlocks(N, OC)) {
            return (i, of) -> {
                int r0 = cut(N, i, of), r1 = cut(N, i + 1, of);
                if (r0 == r1) return;
                FloatPointer cb = cp.getPointer((long) r0 * OC);
                OpenBlas.sgemm(false, true, r1 - r0, OC, IC, 1f, ap.getPointer((long) r0 * IC), IC, w, IC, 0f, cb, OC);
                cb.get(o, r0 * OC, (r1 - r0) * OC);
                addBias(o, bias, r0, r1, 0, OC, OC);
            };
        }
        return (i, of) -> {
            int c0 = cut(OC, i, of), c1 = cut(OC, i + 1, of);
            if (c0 == c1) return;
            OpenBlas.sgemm(false, true, N, c1 - c0, IC, 1f, ap, IC, w.getPointer((long) c0 * IC), IC, 0f, cp.getPointer(c0), OC);
            if (c0 == 0 && c1 == OC) {
                cp.get(o, 0, N * OC);
            } else {
                // this block's columns, row by row (the other blocks write the rest of each row)
                java.nio.FloatBuffer cb = cp.asBuffer();
                for (int r = 0; r < N; r++) cb.get(r * OC + c0, o, r * OC + c0, c1 - c0);
            }
            addBias(o, bias, 0, N, c0, c1, OC);
        };
    }

    /** Adds bias to columns [c0, c1) of rows [r0, r1). */
    private static void addBias(float[] o, float[] bias, int r0, int r1, int c0, int c1, int OC) {
        if (bias == null) return;
        for (int r = r0; r < r1; r++) {
            int off = r * OC;
            for (int j = c0; j < c1; j++) o[off + j] += bias[j];
        }
    }

    @Override
    public void backward(CpuTensor dIn, CpuTensor dWeight, CpuTensor dOut, CpuTensor in, CpuTensor weight, int N, int IC, int OC) {
        FloatPointer gp = dOut.nativeMirror();
        Product dx = dIn == null ? null : dInProduct(dIn, gp, weight, N, IC, OC);
        // a product over no rows leaves dW as it is (and must not overwrite pending zeros)
        Product dw = dWeight == null || N == 0 ? null : dWeightProduct(dWeight, gp, in, N, IC, OC);
        int threads = par.threads();
        if (dx != null && dw != null && threads > 1) {
            // dIn and dW side by side, each on its share of the threads (the two cost the same, 2 N OC IC
            // flops): two whole products on two cores ran about 20% faster than each cut in two in
            // turn, whose halves both read and pack the same shared operand
            int forIn = (threads + 1) / 2, forW = threads - forIn;
            par.parts(threads, (part, lo, hi) -> {
                if (part < forIn) dx.block(part, forIn);
                else dw.block(part - forIn, forW);
            });
            return;
        }
        if (dx != null) par.parts(threads, (part, lo, hi) -> dx.block(part, threads));
        if (dw != null) par.parts(threads, (part, lo, hi) -> dw.block(part, threads));
    }

    /** A product cut into {@code of} blocks; block {@code i} computes its share (none when the product is smaller). */
    private interface Product {
        void block(int i, int of);
    }

    /** dIn [N, IC] += dOut [N, OC] @ W [OC, IC], in blocks of rows or of columns (see {@link #rowBlocks}). */
    private Product dInProduct(CpuTensor dIn, FloatPointer gp, CpuTensor weight, int N, int IC, int OC) {
        FloatPointer w = weight.nativeMirror();
        CpuTensor.NativeTarget t = dIn.nativeForUpdate();
        FloatPointer dx = t.c();
        float beta = t.beta();
        if (rowBlocks(N, IC)) {
            return (i, of) -> {
                int r0 = cut(N, i, of), r1 = cut(N, i + 1, of);
                if (r0 < r1) OpenBlas.sgemm(false, false, r1 - r0, IC, OC, 1f, gp.getPointer((long) r0 * OC), OC,
                        w, IC, beta, dx.getPointer((long) r0 * IC), IC);
            };
        }
        return (i, of) -> {
            int c0 = cut(IC, i, of), c1 = cut(IC, i + 1, of);
            if (c0 < c1) OpenBlas.sgemm(false, false, N, c1 - c0, OC, 1f, gp, OC, w.getPointer(c0), IC, beta, dx.getPointer(c0), IC);
        };
    }

    /** dW [OC, IC] += dOut^T [OC, N] @ in [N, IC], in blocks of rows or of columns. */
    private Product dWeightProduct(CpuTensor dWeight, FloatPointer gp, CpuTensor in, int N, int IC, int OC) {
        FloatPointer x = in.nativeMirror();
        CpuTensor.NativeTarget t = dWeight.nativeForUpdate();
        FloatPointer dw = t.c();
        float beta = t.beta();
        if (rowBlocks(OC, IC)) {
            return (i, of) -> {
                int o0 = cut(OC, i, of), o1 = cut(OC, i + 1, of);
                if (o0 < o1) OpenBlas.sgemm(true, false, o1 - o0, IC, N, 1f, gp.getPointer(o0), OC,
                        x, IC, beta, dw.getPointer((long) o0 * IC), IC);
            };
        }
        return (i, of) -> {
            int c0 = cut(IC, i, of), c1 = cut(IC, i + 1, of);
            if (c0 < c1) OpenBlas.sgemm(true, false, OC, c1 - c0, N, 1f, gp, OC, x.getPointer(c0), IC, beta, dw.getPointer(c0), IC);
        };
    }

    /** The start of block i of {@code of} over [0, n). */
    private static int cut(int n, int i, int of) {
        return (int) ((long) n * i / of);
    }

    @Override
    public void close() {
        c.free();
    }
}
