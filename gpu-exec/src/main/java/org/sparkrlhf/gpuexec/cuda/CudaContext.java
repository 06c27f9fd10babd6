package org.sparkrlhf.gpuexec.cuda;

import static jcuda.driver.JCudaDriver.*;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.ConcurrentHashMap;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;

/**
 * One CUDA context per device, shared by every thread of the JVM: it is the device's primary
 * context, made current on whichever Spark task thread calls in. It also holds what is compiled
 * once per device (the kernels) and the device's properties.
 */
public final class CudaContext {
    private static final ConcurrentHashMap<Integer, CudaContext> CONTEXTS = new ConcurrentHashMap<>();
    private static final ThreadLocal<CudaContext> CURRENT = new ThreadLocal<>();

    public final int ordinal;
    public final String deviceName;
    public final int computeMajor;
    public final int computeMinor;
    public final int multiprocessors;
    public final long totalMemory;
    public final int maxSharedMemoryPerBlockOptin;
    final CUdevice device;
    final CUcontext context;
    /** The device's default stream-ordered memory pool (a CUmemoryPool handle), which every buffer comes from. */
    private final long memoryPool;
    private volatile KernelModules kernels;

    private CudaContext(int ordinal) {
        CudaDriver.requireAvailable();
        if (ordinal < 0 || ordinal >= CudaDriver.deviceCount()) {
            throw new IllegalArgumentException("CUDA device " + ordinal + " does not exist: this machine has "
                    + CudaDriver.deviceCount() + " device(s)");
        }
        this.ordinal = ordinal;
        device = new CUdevice();
        cuDeviceGet(device, ordinal);
        context = new CUcontext();
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        CURRENT.set(this);
        byte[] name = new byte[256];
        cuDeviceGetName(name, name.length, device);
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        deviceName = new String(name, 0, len, StandardCharsets.US_ASCII);
        computeMajor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        computeMinor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        maxSharedMemoryPerBlockOptin = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        long[] total = {0};
        cuDeviceTotalMem(total, device);
        totalMemory = total[0];
        long[] pool = {0};
        LibCuda.check(LibCuda.cuDeviceGetDefaultMemPool(pool, ordinal), "cuDeviceGetDefaultMemPool");
        memoryPool = pool[0];
        LibCuda.check(LibCuda.cuMemPoolSetAttribute(memoryPool, LibCuda.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                new long[] {releaseThreshold(totalMemory)}), "cuMemPoolSetAttribute(RELEASE_THRESHOLD)");
    }

    /**
     * How much freed memory the device's pool keeps across synchronizations: a quarter of the device.
     * Activations are freed and taken again every step, and memory kept in the pool is taken again
     * without asking the driver; but memory the pool keeps is lost to everything outside it (NCCL's
     * buffers, kernel modules, cuBLAS, other processes), so it keeps a bounded share, not all (an
     * unbounded threshold never gives back what a training step once used). {@link #trim} gives back
     * what it keeps when something outside the pool needs memory.
     */
    static long releaseThreshold(long totalMemory) {
        return totalMemory / 4;
    }

    /**
     * Gives the pool's unused memory back to the driver, after waiting for all work queued on the
     * device (a buffer freed on a stream returns to the pool only when the stream reaches the free).
     * Call it before setting up what allocates outside the pool: NCCL communicators
     * ({@code ncclCommInitRank*} allocate their buffers with the driver), and after a pool
     * allocation failed (the backend retries once after trimming). Must not be called while a
     * stream of this device is being captured into a graph.
     */
    public void trim() {
        makeCurrent();
        cuCtxSynchronize();
        LibCuda.check(LibCuda.cuMemPoolTrimTo(memoryPool, 0), "cuMemPoolTrimTo");
    }

    /** The context of a CUDA device ordinal, created on first use. */
    public static CudaContext forDevice(int ordinal) {
        CudaDriver.requireAvailable();
        CudaContext c = CONTEXTS.computeIfAbsent(ordinal, CudaContext::new);
        c.makeCurrent();
        return c;
    }

    /**
     * The context for a GPU address as Spark gives it in a task's resources ("0", "1", ...). Spark's GPU
     * discovery script prints the ordinals CUDA sees, so the address is the CUDA device ordinal.
     */
    public static CudaContext forGpuAddress(String address) {
        return forDevice(ordinalOfGpuAddress(address));
    }

    public static int ordinalOfGpuAddress(String address) {
        if (address == null) throw new IllegalArgumentException("GPU address is null");
        String a = address.trim();
        try {
            int ordinal = Integer.parseInt(a);
            if (ordinal < 0) throw new NumberFormatException();
            return ordinal;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("GPU address '" + address
                    + "' is not a CUDA device ordinal (expected a non-negative integer such as \"0\")");
        }
    }

    /** Makes this context current on the calling thread; cheap when it already is. */
    public void makeCurrent() {
        if (CURRENT.get() != this) {
            cuCtxSetCurrent(context);
            CURRENT.set(this);
        }
    }

    /** "sm_90" for an H100. */
    public String architecture() {
        return "sm_" + computeMajor + computeMinor;
    }

    /** Free and total device memory in bytes, as the driver sees it (all processes). */
    public long[] memoryInfo() {
        makeCurrent();
        long[] free = {0}, total = {0};
        cuMemGetInfo(free, total);
        return new long[] {free[0], total[0]};
    }

    /** The kernels compiled for this device, compiled on first use. */
    public KernelModules kernels() {
        KernelModules k = kernels;
        if (k == null) {
            synchronized (this) {
                if (kernels == null) kernels = new KernelModules(this);
                k = kernels;
            }
        }
        return k;
    }

    private int attribute(int which) {
        int[] v = {0};
        cuDeviceGetAttribute(v, which, device);
        return v[0];
    }

    @Override
    public String toString() {
        return "CUDA device " + ordinal + " (" + deviceName + ", " + architecture() + ", "
                + multiprocessors + " SMs, " + (totalMemory >> 20) + " MiB)";
    }
}
