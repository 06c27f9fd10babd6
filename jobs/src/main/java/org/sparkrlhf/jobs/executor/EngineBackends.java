package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.Precision;

import java.util.concurrent.ConcurrentHashMap;

/**
 * The engine a rank's models live on: the CUDA backend on the GPU its task was given, else the CPU
 * engine.
 *
 * <p>One CUDA backend per (executor JVM, GPU address, precision), made on first use and kept for
 * the JVM's life: models stay resident in the executor's {@link ModelStore} between stages, and
 * every later task on that GPU must run them on the backend (stream, cuBLAS handle, compiled
 * kernels, captured decode graphs) they were built on. Spark gives a GPU to one task at a time
 * ({@code spark.task.resource.gpu.amount=1}; a fraction is refused before Spark starts, see
 * {@link org.sparkrlhf.jobs.runtime.TaskGpuAmount}), so a backend is used by one thread at a time, as
 * the engine requires.
 *
 * <p>A CPU backend is made per model instead, as before: it keeps per-model scratch buffers and is
 * used from one thread at a time, and models resident on one executor are used by concurrent
 * tasks on its other slots. Its threads are the JVM's one shared pool.
 */
public final class EngineBackends {
    private static final ConcurrentHashMap<String, CudaBackend> CUDA = new ConcurrentHashMap<>();

    private EngineBackends() {
    }

    /**
     * The CUDA device a rank's models use: the GPU Spark gave its task ({@code taskGpu}), else the
     * embedded run's {@link EngineOptions#localGpu()}, else null (the CPU engine).
     */
    public static String deviceOf(String taskGpu, EngineOptions options) {
        return taskGpu != null ? taskGpu : options.localGpu();
    }

    /**
     * A backend for a new model of a rank on {@code device} (from {@link #deviceOf}; null: CPU).
     *
     * @throws IllegalStateException when the rank has a GPU but this machine cannot run the CUDA
     *                               backend (no driver), naming the executor, the GPU and why
     * @throws UnsupportedOperationException for bf16 on the CPU engine
     */
    public static Backend forRank(String executorId, String device, EngineOptions options) {
        if (device == null) {
            if (options.precision() != Precision.FP32) {
                throw new UnsupportedOperationException("executor " + executorId + " runs the CPU engine, which computes "
                        + "in fp32 only; " + EngineOptions.PRECISION + "=" + options.precision().name().toLowerCase(java.util.Locale.ROOT)
                        + " needs GPU executors");
            }
            return new CpuBackend();
        }
        if (!CudaBackend.isAvailable()) {
            throw new IllegalStateException("executor " + executorId + " was given GPU " + device
                    + " but cannot run the CUDA backend there: " + CudaBackend.unavailableReason()
                    + " (install the NVIDIA driver on the executor's machine, or run on CPU executors: no "
                    + "spark.executor.resource.gpu.amount / spark.task.resource.gpu.amount"
                    + (options.localGpu() != null ? ", no " + EngineOptions.LOCAL_GPU : "") + ")");
        }
        return cuda(device, options.precision());
    }

    /** The executor's one CUDA backend for {@code device} at {@code precision}, made on first use. */
    static CudaBackend cuda(String device, Precision precision) {
        return CUDA.computeIfAbsent(device + "/" + precision, k -> CudaBackend.forGpuAddress(device, precision));
    }
}
