package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Host copies of more than one staging piece ({@link CudaBuffer#STAGING_ELEMENTS}, 64 MiB of
 * floats) come back exact in every element type, and a range written at an offset lands there:
 * the pieces' offsets are right. Skipped without a CUDA driver.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CudaBufferGpuTest {
    private static final int N = CudaBuffer.STAGING_ELEMENTS + 5;

    @Test
    void copiesLargerThanOneStagingPieceRoundTrip() {
        Gpu.assumeGpu();
        SplittableRandom random = new SplittableRandom(9);
        float[] floats = new float[N];
        int[] ints = new int[N];
        for (int i = 0; i < N; i++) {
            floats[i] = Bf16.toFloat(Bf16.fromFloat((float) random.nextGaussian()));
            ints[i] = random.nextInt();
        }
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32);
             CudaBuffer buffer = CudaBuffer.allocate(gpu.stream(), N * 4L + 8, MemoryKind.WORKSPACE, gpu.ledger())) {
            buffer.writeFloats(floats);
            assertArrayEquals(floats, buffer.readFloats(N), "fp32");
            buffer.writeBf16(floats);
            assertArrayEquals(floats, buffer.readBf16(N), "bf16");
            buffer.writeInts(ints);
            assertArrayEquals(ints, buffer.readInts(N), "int32");
            // floats[3 ..] written 8 bytes in: element i + 2 of the buffer is floats[i + 3]
            buffer.writeFloats(0, new float[N + 2], 0, N + 2);
            buffer.writeFloats(8, floats, 3, N - 3);
            float[] back = new float[N - 3];
            buffer.readFloats(8, back, 0, N - 3);
            assertArrayEquals(Arrays.copyOfRange(floats, 3, N), back, "a range at an offset");
        }
    }
}
