package org.sparkrlhf.gpuexec.backend.cpu;

/** Blocked matrix transpose: dst[c * rows + r] = src[r * cols + c]. */
final class Transpose {
    private static final int BLOCK = 32;

    private Transpose() {
    }

    static void run(float[] src, int rows, int cols, float[] dst, Parallel par) {
        int rowBlocks = (rows + BLOCK - 1) / BLOCK;
        par.range(rowBlocks, (long) BLOCK * cols, (lo, hi) -> {
            for (int rb = lo; rb < hi; rb++) {
                int r0 = rb * BLOCK, r1 = Math.min(rows, r0 + BLOCK);
                for (int c0 = 0; c0 < cols; c0 += BLOCK) {
                    int c1 = Math.min(cols, c0 + BLOCK);
                    for (int r = r0; r < r1; r++) {
                        int s = r * cols;
                        for (int c = c0; c < c1; c++) dst[c * rows + r] = src[s + c];
                    }
                }
            }
        });
    }
}
