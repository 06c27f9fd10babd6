package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * The device's memory pool: freed memory up to the release threshold stays in the pool across
 * synchronizations, what is beyond it goes back to the driver, and a trim gives back the rest. The
 * driver's free-memory figure is the witness; slack covers the pool's allocation granularity.
 */
@Timeout(120)
class CudaMemoryPoolTest {
    private static final long MIB = 1L << 20, GIB = 1L << 30, SLACK = 64 * MIB;

    @Test
    void thePoolKeepsAtMostItsThresholdAndATrimGivesTheRestBack() {
        Gpu.assumeGpu();
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32)) {
            CudaContext context = gpu.context();
            long threshold = CudaContext.releaseThreshold(context.totalMemory);
            context.trim();
            long before = context.memoryInfo()[0];

            Tensor small = gpu.allocate(DType.F32, (int) (GIB / MIB), (int) (MIB / 4)); // 1 GiB
            gpu.free(small);
            gpu.synchronize();
            long keptSmall = context.memoryInfo()[0];
            assertTrue(before - keptSmall >= GIB - SLACK, "1 GiB freed stays in the pool (threshold "
                    + threshold / MIB + " MiB): free went from " + before / MIB + " to " + keptSmall / MIB + " MiB");
            context.trim();
            long trimmed = context.memoryInfo()[0];
            assertTrue(trimmed >= before - SLACK, "a trim gives it back: " + trimmed / MIB + " MiB free, " + before / MIB + " before");

            long big = threshold + 2 * GIB;
            Tensor large = gpu.allocate(DType.F32, (int) (big / MIB), (int) (MIB / 4));
            gpu.free(large);
            gpu.synchronize();
            long keptLarge = context.memoryInfo()[0];
            assertTrue(keptLarge >= before - threshold - SLACK, "past the threshold the pool gives memory back at a "
                    + "synchronization: " + keptLarge / MIB + " MiB free, " + before / MIB + " before, threshold " + threshold / MIB);
            context.trim();
            assertTrue(context.memoryInfo()[0] >= before - SLACK);
        }
    }
}
