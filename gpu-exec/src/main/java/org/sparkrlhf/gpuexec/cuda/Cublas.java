package org.sparkrlhf.gpuexec.cuda;

import java.util.concurrent.ConcurrentHashMap;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * cuBLAS through JNA, bound directly (Native.register) by versioned name: the newest of
 * libcublas.so.13 and .so.12 that the driver runs (see {@link NativeLibraries#forDriver}). Only what the engine calls: handles, streams, workspaces and the mixed-precision GEMMs
 * (bf16 or fp32 inputs, fp32 accumulation). Pointers are raw device addresses.
 */
final class Cublas {
    static final int OP_N = 0, OP_T = 1;
    static final int R_32F = 0, R_16BF = 14;
    static final int COMPUTE_32F = 68;
    static final int GEMM_DEFAULT = -1;
    static final int DEFAULT_MATH = 0;

    private static final String LOADED;

    static {
        String name = NativeLibraries.firstLoadableForDriver("cuBLAS", "libcublas.so.13", "libcublas.so.12", "libcublas.so");
        Native.register(Cublas.class, NativeLibrary.getInstance(name));
        LOADED = name;
    }

    private Cublas() {}

    static String libraryName() {
        return LOADED;
    }

    static native int cublasCreate_v2(long[] handle);

    static native int cublasDestroy_v2(long handle);

    static native int cublasGetVersion_v2(long handle, int[] version);

    static native int cublasSetStream_v2(long handle, long stream);

    static native int cublasSetWorkspace_v2(long handle, long workspace, long workspaceBytes);

    static native int cublasSetMathMode(long handle, int mode);

    static native int cublasGemmEx(long handle, int transa, int transb, int m, int n, int k, long alpha,
                                   long a, int aType, int lda, long b, int bType, int ldb, long beta,
                                   long c, int cType, int ldc, int computeType, int algo);

    static native int cublasGemmStridedBatchedEx(long handle, int transa, int transb, int m, int n, int k,
                                                 long alpha, long a, int aType, int lda, long strideA,
                                                 long b, int bType, int ldb, long strideB, long beta,
                                                 long c, int cType, int ldc, long strideC, int batchCount,
                                                 int computeType, int algo);

    static native String cublasGetStatusString(int status);

    static void check(int status, String call) {
        if (status != 0) throw new IllegalStateException(call + " failed: " + cublasGetStatusString(status)
                + " (" + status + ")");
    }

    private static final ConcurrentHashMap<Float, Memory> SCALARS = new ConcurrentHashMap<>();

    /**
     * The host address of a float holding {@code v}, kept for the life of the JVM: cuBLAS reads alpha and
     * beta through host pointers, and a captured graph keeps the values they held at capture.
     */
    static long scalar(float v) {
        Memory m = SCALARS.computeIfAbsent(v, x -> {
            Memory mem = new Memory(4);
            mem.setFloat(0, x);
            return mem;
        });
        return com.sun.jna.Pointer.nativeValue(m);
    }
}
