package org.sparkrlhf.gpuexec.cuda;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The few libcuda entry points JCuda 12.6 does not wrap, called through JNA: the device's default
 * stream-ordered memory pool, its release threshold (so that freed activation memory stays in the
 * pool across synchronizations instead of going back to the driver each step) and its trimming.
 */
final class LibCuda {
    private LibCuda() {}

    static final int CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4;

    static {
        NativeLibrary lib = NativeLibraries.open("the CUDA driver", "libcuda.so.1", "libcuda.so");
        Native.register(LibCuda.class, lib);
    }

    static native int cuDeviceGetDefaultMemPool(long[] pool, int device);

    static native int cuMemPoolSetAttribute(long pool, int attribute, long[] value);

    static native int cuMemPoolTrimTo(long pool, long minBytesToKeep);

    static void check(int status, String call) {
        if (status != 0) throw new IllegalStateException(call + " failed with CUresult " + status);
    }
}
