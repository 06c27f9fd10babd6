package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.sparkrlhf.gpuexec.backend.DType;

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
        run(forwardProduct(out, in, in.nativeMirror(), weight, bias, N, IC, OC, c.get((long) N * OC)));
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
            ps[i] = forwardProduct(outs[i], in, ap, weights[i], biases[i], N, IC, OC[i], cp.getPointer(at));
            at += (long) N * OC[i];
        }
        int whole = P - P % threads;
        par.parts(threads, (part, lo, hi) -> {
            for (int i = part; i < whole; i += threads) ps[i].block(0, 1);
            for (int i = whole; i < P; i++) ps[i].block(part, threads);
        });
    }

    /**
     * out = in @ W^T + bias, as blocks (see the class comment): an fp32 output without bias straight
     * into out's native mirror, where the next product, attention, SwiGLU and the token logprobs read
     * it and a Java op's read copies it into the array only then; else through native scratch cp
     * [N, OC] into the array (bias added, or rounded to bf16, there).
     */
    private Product forwardProduct(CpuTensor out, CpuTensor in, FloatPointer ap, CpuTensor weight, float[] bias, int N, int IC,
                                   int OC, FloatPointer cp) {
        FloatPointer w = weight.nativeMirror();
        if (N > FEW_ROWS && bias == null && out.dtype() == DType.F32 && out != in) {
            FloatPointer dst = out.nativeOutput();
            if (rowBlocks(N, OC)) {
                return (i, of) -> {
                    int r0 = cut(N, i, of), r1 = cut(N, i + 1, of);
                    if (r0 < r1) OpenBlas.sgemm(false, true, r1 - r0, OC, IC, 1f, ap.getPointer((long) r0 * IC), IC, w, IC, 0f,
                            dst.getPointer((long) r0 * OC), OC);
                };
            }
            return (i, of) -> {
                int c0 = cut(OC, i, of), c1 = cut(OC, i + 1, of);
                if (c0 < c1) OpenBlas.sgemm(false, true, N, c1 - c0, IC, 1f, ap, IC, w.getPointer((long) c0 * IC), IC, 0f,
                        dst.getPointer(c0), OC);
            };
        }
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
        // dIn [N, IC] += dOut [N, OC] @ W [OC, IC]
        Product dx = dIn == null ? null : accumulate(false, N, IC, OC, gp, OC, weight.nativeMirror(), dIn.nativeForUpdate());
        // dW [OC, IC] += dOut^T [OC, N] @ in [N, IC]; a product over no rows leaves dW as it is (and must
        // not overwrite pending zeros)
        Product dw = dWeight == null || N == 0 ? null
                : accumulate(true, OC, IC, N, gp, OC, in.nativeMirror(), dWeight.nativeForUpdate());
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
        if (dx != null) run(dx);
        if (dw != null) run(dw);
    }

    /** A product cut into {@code of} blocks; block {@code i} computes its share (none when the product is smaller). */
    private interface Product {
        void block(int i, int of);
    }

    /**
     * C [m, n] += op(A) [m, k] B [k, n] into a product's native target (beta 0 over pending zeros), in
     * blocks of C's rows or of its columns (see {@link #rowBlocks}): dIn = dOut W (A = dOut) and
     * dW = dOut^T in (A = dOut, transposed).
     */
    private Product accumulate(boolean transA, int m, int n, int k, FloatPointer a, int lda, FloatPointer b,
                               CpuTensor.NativeTarget target) {
        FloatPointer c = target.c();
        float beta = target.beta();
        if (rowBlocks(m, n)) {
            return (i, of) -> {
                int r0 = cut(m, i, of), r1 = cut(m, i + 1, of);
                if (r0 < r1) OpenBlas.sgemm(transA, false, r1 - r0, n, k, 1f, a.getPointer(transA ? r0 : (long) r0 * lda), lda,
                        b, n, beta, c.getPointer((long) r0 * n), n);
            };
        }
        return (i, of) -> {
            int c0 = cut(n, i, of), c1 = cut(n, i + 1, of);
            if (c0 < c1) OpenBlas.sgemm(transA, false, m, c1 - c0, k, 1f, a, lda, b.getPointer(c0), n, beta, c.getPointer(c0), n);
        };
    }

    /** Runs a product cut into one block per thread. */
    private void run(Product p) {
        int threads = par.threads();
        par.parts(threads, (part, lo, hi) -> p.block(part, threads));
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
