package org.sparkrlhf.gpuexec.cuda;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.RangeCopyCheck;

/**
 * The CUDA backend's ranged copies (host to device and back at an element offset, device to device
 * by cuMemcpyDtoD or the converting kernel at offsets) against plain array copies, F32 and BF16
 * ({@link RangeCopyCheck}). Skipped without a CUDA driver.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CudaRangeCopyGpuTest {
    @Test
    void rangesMatchArrayCopies() {
        Gpu.assumeGpu();
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32)) {
            RangeCopyCheck.check(gpu);
        }
    }
}
