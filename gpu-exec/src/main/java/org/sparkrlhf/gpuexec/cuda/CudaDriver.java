package org.sparkrlhf.gpuexec.cuda;

import java.lang.reflect.Method;

import jcuda.NativePointerObject;
import jcuda.driver.JCudaDriver;

/**
 * Loads the CUDA driver through JCuda once and says whether it is there. On a machine without a
 * driver, touching JCudaDriver throws an UnsatisfiedLinkError; that is caught here and turned into
 * one line, so that the CPU backend stays usable and the CUDA backend reports why it is not.
 */
public final class CudaDriver {
    private static final String UNAVAILABLE_REASON;
    private static final int DEVICE_COUNT;
    private static final int DRIVER_VERSION;
    private static final Method GET_NATIVE_POINTER;

    static {
        String reason = null;
        int count = 0;
        int version = 0;
        try {
            JCudaDriver.setExceptionsEnabled(true);
            JCudaDriver.cuInit(0);
            int[] n = {0};
            JCudaDriver.cuDeviceGetCount(n);
            count = n[0];
            int[] v = {0};
            JCudaDriver.cuDriverGetVersion(v);
            version = v[0];
            if (count == 0) reason = "no CUDA driver: the driver loaded but reports no CUDA device";
        } catch (LinkageError e) {
            reason = "no CUDA driver: " + linkFailure(e.getMessage());
        } catch (RuntimeException e) {
            reason = "no CUDA driver: cuInit failed: " + firstLine(e.getMessage());
        }
        UNAVAILABLE_REASON = reason;
        DEVICE_COUNT = count;
        DRIVER_VERSION = version;
        Method m = null;
        try {
            // JCuda keeps a pointer's raw address protected; JNA calls into cuBLAS/NVRTC/NCCL need it.
            m = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            m.setAccessible(true);
        } catch (ReflectiveOperationException | RuntimeException e) {
            if (reason == null) throw new IllegalStateException("JCuda has no getNativePointer: " + e, e);
        }
        GET_NATIVE_POINTER = m;
    }

    private CudaDriver() {}

    /** True when libcuda loaded and at least one device is visible. */
    public static boolean isAvailable() {
        return UNAVAILABLE_REASON == null;
    }

    /** One line saying why CUDA cannot be used, or null when it can. */
    public static String unavailableReason() {
        return UNAVAILABLE_REASON;
    }

    public static int deviceCount() {
        return DEVICE_COUNT;
    }

    /**
     * The CUDA version the driver runs, as cuDriverGetVersion gives it (1000 * major + 10 * minor:
     * 13000 for CUDA 13.0); the toolkit libraries are chosen by it ({@link NativeLibraries#forDriver}).
     */
    public static int driverVersion() {
        requireAvailable();
        return DRIVER_VERSION;
    }

    /** Throws the one-line reason when CUDA cannot be used. */
    public static void requireAvailable() {
        if (UNAVAILABLE_REASON != null) throw new UnsupportedOperationException(UNAVAILABLE_REASON);
    }

    /** The raw address behind a JCuda handle or device pointer (including its byte offset, for CUdeviceptr views). */
    static long address(NativePointerObject p) {
        try {
            long base = (Long) GET_NATIVE_POINTER.invoke(p);
            return base + byteOffset(p);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read a JCuda pointer's address", e);
        }
    }

    private static final Method GET_BYTE_OFFSET = byteOffsetMethod();

    private static Method byteOffsetMethod() {
        try {
            Method m = jcuda.Pointer.class.getDeclaredMethod("getByteOffset");
            m.setAccessible(true);
            return m;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    private static long byteOffset(NativePointerObject p) throws ReflectiveOperationException {
        if (!(p instanceof jcuda.Pointer) || GET_BYTE_OFFSET == null) return 0;
        return (Long) GET_BYTE_OFFSET.invoke(p);
    }

    /**
     * JCuda's message spans many lines; the line that names libcuda says why (typically "libcuda.so.1:
     * cannot open shared object file").
     */
    private static String linkFailure(String message) {
        if (message != null) {
            for (String line : message.split("\n")) {
                int at = line.indexOf("libcuda");
                if (at >= 0) return line.substring(at).trim();
            }
        }
        return firstLine(message);
    }

    private static String firstLine(String s) {
        if (s == null) return "(no message)";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
