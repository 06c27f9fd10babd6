package org.sparkrlhf.gpuexec.cuda;

/**
 * Prints in one line what the CUDA backend finds on this machine: device 0, the CUDA version its
 * driver runs, and the cuBLAS, NVRTC and NCCL it loads; or, exiting with 3, why CUDA cannot be used
 * ("no CUDA driver: ..."). The first line of tools/gpu-check.sh's summary.
 */
public final class CudaInfo {
    private CudaInfo() {}

    public static void main(String[] args) {
        if (!CudaDriver.isAvailable()) {
            System.out.println(CudaDriver.unavailableReason());
            System.exit(3);
        }
        CudaContext device = CudaContext.forDevice(0);
        StringBuilder line = new StringBuilder(device.toString()).append(" of ").append(CudaDriver.deviceCount())
                .append("; driver runs CUDA ").append(NativeLibraries.cudaVersion(CudaDriver.driverVersion()));
        line.append("; cuBLAS: ").append(library(() -> Cublas.libraryName()));
        line.append("; NVRTC: ").append(library(Nvrtc::version));
        line.append("; NCCL: ").append(library(() -> {
            int v = NcclCommunicator.version();
            return v / 10000 + "." + v / 100 % 100 + "." + v % 100;
        }));
        System.out.println(line);
    }

    /** The library's name or version, or why it does not load (the backend then fails at its first use of it). */
    private static String library(java.util.function.Supplier<String> what) {
        try {
            return what.get();
        } catch (RuntimeException | LinkageError e) {
            return "cannot load (" + e.getMessage() + ")";
        }
    }
}
