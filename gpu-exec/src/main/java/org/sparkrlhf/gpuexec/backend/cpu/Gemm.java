package org.sparkrlhf.gpuexec.backend.cpu;

/**
 * C[i, j] (+)= sum_p A[i, p] * B[j, p], with A [m, k] and B [n, k] both row-major (the layout of
 * out = in @ W^T): the one matrix kernel of the reference CPU kernels. A 4 x 4 block of C is
 * summed in sixteen scalar accumulators while A's and B's rows stream through once (plain loops:
 * on the JIT this beats the vectorised axpy order, which is bound by loads and stores of C). C is
 * tiled so that a tile's rows of A and B stay in cache, k in blocks for long rows; each element
 * is summed in increasing p order whatever the tiling.
 */
final class Gemm {
    /** Rows of A (rows of C) per tile. */
    private static final int ROWS = 32;
    /** Rows of B (columns of C) per tile. */
    private static final int COLS = 64;
    /** Depth (k) per block: a tile's rows of A and B (96 x 512 floats) stay in L2. */
    private static final int DEPTH = 512;

    private Gemm() {
    }

    /**
     * @param c          C [m, n] row-major
     * @param a          A [m, k] row-major
     * @param b          B [n, k] row-major
     * @param bias       added to every row of C when not accumulating (length n), or null
     * @param accumulate add to C instead of overwriting it
     */
    static void run(float[] c, float[] a, float[] b, float[] bias, int m, int k, int n, boolean accumulate, Parallel par) {
        int rowTiles = (m + ROWS - 1) / ROWS;
        int colTiles = (n + COLS - 1) / COLS;
        par.range(rowTiles * colTiles, (long) ROWS * COLS * k, (lo, hi) -> {
            for (int tile = lo; tile < hi; tile++) {
                int i0 = (tile / colTiles) * ROWS, i1 = Math.min(m, i0 + ROWS);
                int j0 = (tile % colTiles) * COLS, j1 = Math.min(n, j0 + COLS);
                for (int p0 = 0; p0 < k || p0 == 0; p0 += DEPTH) {
                    int p1 = Math.min(k, p0 + DEPTH);
                    // where this block's sums start: C (accumulating or a later block), the bias, or 0
                    boolean fromC = accumulate || p0 > 0;
                    float[] start = p0 == 0 ? bias : null;
                    int i = i0;
                    for (; i + 4 <= i1; i += 4) {
                        int j = j0;
                        for (; j + 4 <= j1; j += 4) block4x4(c, a, b, start, fromC, i, j, p0, p1, k, n);
                        for (; j < j1; j++) for (int r = i; r < i + 4; r++) single(c, a, b, start, fromC, r, j, p0, p1, k, n);
                    }
                    for (; i < i1; i++) for (int j = j0; j < j1; j++) single(c, a, b, start, fromC, i, j, p0, p1, k, n);
                }
            }
        });
    }

    private static float init(float[] c, float[] bias, boolean fromC, int i, int j, int n) {
        return fromC ? c[i * n + j] : bias != null ? bias[j] : 0f;
    }

    private static void single(float[] c, float[] a, float[] b, float[] bias, boolean fromC, int i, int j, int p0, int p1, int k, int n) {
        float s = init(c, bias, fromC, i, j, n);
        int ar = i * k, br = j * k;
        for (int p = p0; p < p1; p++) s += a[ar + p] * b[br + p];
        c[i * n + j] = s;
    }

    private static void block4x4(float[] c, float[] a, float[] b, float[] bias, boolean fromC, int i, int j, int p0, int p1, int k, int n) {
        float s00 = init(c, bias, fromC, i, j, n), s01 = init(c, bias, fromC, i, j + 1, n),
                s02 = init(c, bias, fromC, i, j + 2, n), s03 = init(c, bias, fromC, i, j + 3, n);
        float s10 = init(c, bias, fromC, i + 1, j, n), s11 = init(c, bias, fromC, i + 1, j + 1, n),
                s12 = init(c, bias, fromC, i + 1, j + 2, n), s13 = init(c, bias, fromC, i + 1, j + 3, n);
        float s20 = init(c, bias, fromC, i + 2, j, n), s21 = init(c, bias, fromC, i + 2, j + 1, n),
                s22 = init(c, bias, fromC, i + 2, j + 2, n), s23 = init(c, bias, fromC, i + 2, j + 3, n);
        float s30 = init(c, bias, fromC, i + 3, j, n), s31 = init(c, bias, fromC, i + 3, j + 1, n),
                s32 = init(c, bias, fromC, i + 3, j + 2, n), s33 = init(c, bias, fromC, i + 3, j + 3, n);
        int a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
        int b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
        for (int p = p0; p < p1; p++) {
            float x0 = a[a0 + p], x1 = a[a1 + p], x2 = a[a2 + p], x3 = a[a3 + p];
            float y0 = b[b0 + p], y1 = b[b1 + p], y2 = b[b2 + p], y3 = b[b3 + p];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s02 += x0 * y2;
            s03 += x0 * y3;
            s10 += x1 * y0;
            s11 += x1 * y1;
            s12 += x1 * y2;
            s13 += x1 * y3;
            s20 += x2 * y0;
            s21 += x2 * y1;
            s22 += x2 * y2;
            s23 += x2 * y3;
            s30 += x3 * y0;
            s31 += x3 * y1;
            s32 += x3 * y2;
            s33 += x3 * y3;
        }
        int r = i * n + j;
        c[r] = s00;
        c[r + 1] = s01;
        c[r + 2] = s02;
        c[r + 3] = s03;
        r += n;
        c[r] = s10;
        c[r + 1] = s11;
        c[r + 2] = s12;
        c[r + 3] = s13;
        r += n;
        c[r] = s20;
        c[r + 1] = s21;
        c[r + 2] = s22;
        c[r + 3] = s23;
        r += n;
        c[r] = s30;
        c[r + 1] = s31;
        c[r + 2] = s32;
        c[r + 3] = s33;
    }
}
