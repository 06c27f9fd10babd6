package org.sparkrlhf.gpuexec.backend.cpu;

/**
 * C[i, j] (+)= sum_p A[i, p] * B[p, j] with B row-major: the one matrix kernel of the CPU backend.
 * The inner loop runs along a row block of B and C ("axpy" order), which the JIT vectorises;
 * four rows of C are computed together so that each loaded element of B serves four FMAs, in
 * private accumulators that stay in L1. A is read through strides, so that A may be a transposed
 * view (dW = dOut^T @ in).
 */
final class Gemm {
    /** Columns of C per tile: the accumulators (4 x 64 floats) and a B row slice stay in L1. */
    private static final int COLS = 64;
    /** Rows of C per parallel task. */
    private static final int ROWS = 32;
    /** Depth (k) per block: the B slice a block reads (256 x 64 floats) stays in L2 for every row of the tile. */
    private static final int DEPTH = 256;

    private Gemm() {
    }

    /**
     * @param c        C [m, n], row stride n
     * @param a        A element (i, p) at a[aOff + i * aRow + p * aCol]
     * @param b        B [k, n] row-major
     * @param bias     added to every row of C when not accumulating (length n), or null
     * @param accumulate add to C instead of overwriting it
     */
    static void run(float[] c, float[] a, int aOff, int aRow, int aCol, float[] b, float[] bias,
                    int m, int k, int n, boolean accumulate, Parallel par) {
        int rowTiles = (m + ROWS - 1) / ROWS;
        int colTiles = (n + COLS - 1) / COLS;
        par.range(rowTiles * colTiles, (long) ROWS * COLS * k, (lo, hi) -> {
            float[] c0 = new float[COLS], c1 = new float[COLS], c2 = new float[COLS], c3 = new float[COLS];
            for (int tile = lo; tile < hi; tile++) {
                int i0 = (tile / colTiles) * ROWS, i1 = Math.min(m, i0 + ROWS);
                int j0 = (tile % colTiles) * COLS, w = Math.min(COLS, n - j0);
                // k in blocks, so that the slice of B a block reads (DEPTH x COLS) stays in L2 for every row of the tile
                for (int p0 = 0; p0 < k || p0 == 0; p0 += DEPTH) {
                    int p1 = Math.min(k, p0 + DEPTH);
                    boolean add = accumulate || p0 > 0;
                    float[] first = p0 == 0 ? bias : null;
                    int i = i0;
                    for (; i + 4 <= i1; i += 4) {
                        load(c0, c, i, n, j0, w, first, add);
                        load(c1, c, i + 1, n, j0, w, first, add);
                        load(c2, c, i + 2, n, j0, w, first, add);
                        load(c3, c, i + 3, n, j0, w, first, add);
                        int ar0 = aOff + i * aRow, ar1 = ar0 + aRow, ar2 = ar1 + aRow, ar3 = ar2 + aRow;
                        for (int p = p0; p < p1; p++) {
                            int ap = p * aCol;
                            float x0 = a[ar0 + ap], x1 = a[ar1 + ap], x2 = a[ar2 + ap], x3 = a[ar3 + ap];
                            int bp = p * n + j0;
                            for (int j = 0; j < w; j++) {
                                float bv = b[bp + j];
                                c0[j] += x0 * bv;
                                c1[j] += x1 * bv;
                                c2[j] += x2 * bv;
                                c3[j] += x3 * bv;
                            }
                        }
                        System.arraycopy(c0, 0, c, i * n + j0, w);
                        System.arraycopy(c1, 0, c, (i + 1) * n + j0, w);
                        System.arraycopy(c2, 0, c, (i + 2) * n + j0, w);
                        System.arraycopy(c3, 0, c, (i + 3) * n + j0, w);
                    }
                    for (; i < i1; i++) {
                        load(c0, c, i, n, j0, w, first, add);
                        int ar = aOff + i * aRow;
                        for (int p = p0; p < p1; p++) {
                            float x = a[ar + p * aCol];
                            int bp = p * n + j0;
                            for (int j = 0; j < w; j++) c0[j] += x * b[bp + j];
                        }
                        System.arraycopy(c0, 0, c, i * n + j0, w);
                    }
                }
            }
        });
    }

    private static void load(float[] acc, float[] c, int i, int n, int j0, int w, float[] bias, boolean accumulate) {
        if (accumulate) System.arraycopy(c, i * n + j0, acc, 0, w);
        else if (bias != null) System.arraycopy(bias, j0, acc, 0, w);
        else java.util.Arrays.fill(acc, 0, w, 0f);
    }
}
