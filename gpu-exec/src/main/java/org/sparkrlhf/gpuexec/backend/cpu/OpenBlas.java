package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * OpenBLAS's sgemm through JavaCPP's presets (natives bundled for linux-x86_64), loaded once per
 * JVM. OpenBLAS is told to use one thread per call: the backend splits a product into blocks on
 * its own pool, so that the threads a JVM runs stay bounded by that pool (a Spark executor runs
 * several tasks, each with its models) and no OpenBLAS thread spins between calls.
 */
final class OpenBlas {
    private static final String UNAVAILABLE = load();

    private OpenBlas() {
    }

    private static String load() {
        try {
            org.bytedeco.javacpp.Loader.load(openblas_nolapack.class);
            org.bytedeco.openblas.presets.openblas_nolapack.blas_set_num_threads(1);
            return null;
        } catch (Throwable t) {
            return t.getClass().getSimpleName() + ": " + t.getMessage();
        }
    }

    /** Whether OpenBLAS loaded on this machine. */
    static boolean available() {
        return UNAVAILABLE == null;
    }

    /** Why OpenBLAS did not load (null when it did). */
    static String unavailableReason() {
        return UNAVAILABLE;
    }

    /**
     * C = alpha op(A) op(B) + beta C, row-major; op(X) = X^T when trans. Pointers are positioned
     * at the first element each operand uses.
     */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                      FloatPointer b, int ldb, float beta, FloatPointer c, int ldc) {
        if (m == 0 || n == 0) return;
        openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
                transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                transB ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /**
     * y = alpha op(A) x + beta y, row-major A [m, n]; op(A) = A^T when trans. For one vector a
     * product costs far less here than through sgemm, whose set-up dominates at these sizes.
     */
    static void sgemv(boolean trans, int m, int n, float alpha, FloatPointer a, int lda, FloatPointer x,
                      float beta, FloatPointer y) {
        if (m == 0 || n == 0) return;
        openblas_nolapack.cblas_sgemv(openblas_nolapack.CblasRowMajor,
                trans ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                m, n, alpha, a, lda, x, 1, beta, y, 1);
    }
}
