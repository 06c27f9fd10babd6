package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.cuda.Precision;

import java.io.Serializable;
import java.util.Locale;

/**
 * How the ranks of a run build their model engine, from the Spark conf (so that the driver reads it
 * once and every barrier task carries it; a run config sets them under {@code spark.conf}):
 * <ul>
 *   <li>{@value #PRECISION}: {@code fp32} (default; the only one on CPU executors) or {@code bf16}
 *       (the CUDA backend's mixed precision: bf16 products on tensor cores, fp32 master weights);</li>
 *   <li>{@value #LOCAL_GPU}: a CUDA device ordinal for an embedded run ({@code local} or
 *       {@code local[1]}): Spark's local mode cannot give tasks GPUs (a {@code local[N]} stage that
 *       asks for {@code spark.task.resource.gpu.amount} never gets scheduled), so the one task slot
 *       runs its models on this device instead. One slot, because two ranks on one GPU would share
 *       its backend at the same time and NCCL refuses two ranks on one device.</li>
 * </ul>
 */
public record EngineOptions(Precision precision, String localGpu) implements Serializable {
    public static final String PRECISION = "spark.rlhf.engine.precision";
    public static final String LOCAL_GPU = "spark.rlhf.engine.localGpu";

    /** fp32, devices from Spark's resources only. */
    public static final EngineOptions DEFAULT = new EngineOptions(Precision.FP32, null);

    public EngineOptions {
        if (precision == null) {
            throw new IllegalArgumentException(PRECISION + " is null");
        }
    }

    /**
     * Parses the two settings as given in the Spark conf (null: not set).
     *
     * @throws IllegalArgumentException naming the key and the accepted values
     */
    public static EngineOptions parse(String precision, String localGpu) {
        Precision p = Precision.FP32;
        if (precision != null) {
            p = switch (precision.trim().toLowerCase(Locale.ROOT)) {
                case "fp32" -> Precision.FP32;
                case "bf16" -> Precision.BF16;
                default -> throw new IllegalArgumentException(PRECISION + ": '" + precision
                        + "' is not a precision (fp32 or bf16)");
            };
        }
        String gpu = null;
        if (localGpu != null) {
            gpu = localGpu.trim();
            if (!gpu.matches("\\d+")) {
                throw new IllegalArgumentException(LOCAL_GPU + ": '" + localGpu
                        + "' is not a CUDA device ordinal (a non-negative integer such as 0)");
            }
        }
        return new EngineOptions(p, gpu);
    }

    /**
     * Checks the settings against how the application runs: {@code gpus} whether Spark gives tasks
     * GPUs, {@code master} the Spark master.
     *
     * @throws IllegalArgumentException saying which setting does not fit and what to do
     */
    public void checkAgainst(boolean gpus, String master) {
        if (localGpu != null) {
            if (gpus) {
                throw new IllegalArgumentException(LOCAL_GPU + " is for embedded runs; with GPU executors "
                        + "(spark.executor.resource.gpu.amount) each task runs on the GPU Spark gives it: remove " + LOCAL_GPU);
            }
            if (!(master.equals("local") || master.equals("local[1]"))) {
                throw new IllegalArgumentException(LOCAL_GPU + " needs one task slot (master local or local[1], not "
                        + master + "): every rank of a call would run on the one GPU at once");
            }
        }
        if (precision == Precision.BF16 && !gpus && localGpu == null) {
            throw new IllegalArgumentException(PRECISION + "=bf16 needs the CUDA backend, and the executors have no "
                    + "GPUs (no spark.executor.resource.gpu.amount, no " + LOCAL_GPU + "); the CPU engine computes in fp32");
        }
    }
}
