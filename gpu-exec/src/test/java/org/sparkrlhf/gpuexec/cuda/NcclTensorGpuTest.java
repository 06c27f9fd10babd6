package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

/**
 * NCCL on device tensors, in place and in their dtype, on the one GPU of the test machine. A
 * one-rank in-place all-reduce or broadcast is the identity whatever the element type, so the
 * element type, the count and the chunk offsets are checked out of place: each chunk of a tensor is
 * all-reduced, broadcast, or sent to this very rank, into a larger tensor with guard elements on
 * both sides. A bf16 range sent as fp32 would move twice its bytes and overwrite the guard, one sent
 * at fp32 offsets would land in the wrong place; the exact round trip says neither happened.
 * Skipped without a CUDA driver.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class NcclTensorGpuTest {
    private static final int N = 1001, CHUNK = 64, GUARD = 16;
    private static final float SENTINEL = 7.5f;
    private static CudaBackend gpu;
    private static NcclCommunicator comm;

    @BeforeAll
    static void start() {
        Gpu.assumeGpu();
        gpu = new CudaBackend(0, Precision.BF16);
        comm = new NcclCommunicator(gpu.stream(), 1, NcclCommunicator.newUniqueId(), 0, 60_000);
    }

    @AfterAll
    static void stop() {
        if (comm != null) comm.close();
        if (gpu != null) gpu.close();
    }

    /** Gaussians rounded to bf16, so that a bf16 tensor holds them exactly. */
    private static float[] values(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] v = new float[N];
        for (int i = 0; i < N; i++) v[i] = Bf16.toFloat(Bf16.fromFloat((float) random.nextGaussian()));
        return v;
    }

    private CudaTensor tensor(DType dtype, float[] v) {
        CudaTensor t = gpu.allocate(MemoryKind.ACTIVATIONS, dtype, v.length);
        gpu.upload(t, v);
        return t;
    }

    private interface ChunkOp {
        void run(CudaTensor from, long at, CudaTensor into, long intoAt, long n);
    }

    /** Runs {@code op} chunk by chunk from a tensor of values into a guarded one; returns the guarded one's contents. */
    private float[] throughGuarded(DType dtype, float[] v, ChunkOp op) {
        CudaTensor from = tensor(dtype, v);
        float[] guarded = new float[N + 2 * GUARD];
        Arrays.fill(guarded, SENTINEL);
        CudaTensor into = tensor(dtype, guarded);
        for (int at = 0; at < N; at += CHUNK) op.run(from, at, into, GUARD + at, Math.min(CHUNK, N - at));
        comm.await(60_000, "chunked out-of-place ops");
        float[] got = gpu.download(into);
        gpu.free(from);
        gpu.free(into);
        return got;
    }

    private static void assertGuardedCopy(float[] v, float[] got, String what) {
        for (int i = 0; i < GUARD; i++) {
            assertEquals(SENTINEL, got[i], what + ": guard before, element " + i);
            assertEquals(SENTINEL, got[GUARD + N + i], what + ": guard after, element " + i);
        }
        assertArrayEquals(v, Arrays.copyOfRange(got, GUARD, GUARD + N), what);
    }

    @Test
    void outOfPlaceChunksMoveExactlyTheirRangeInTheirDtype() {
        for (DType dtype : new DType[] {DType.BF16, DType.F32}) {
            float[] v = values(dtype.ordinal());
            assertGuardedCopy(v, throughGuarded(dtype, v, (f, at, t, tat, n) -> comm.allReduceSum(f, at, t, tat, n)),
                    dtype + " all-reduce");
            assertGuardedCopy(v, throughGuarded(dtype, v, (f, at, t, tat, n) -> comm.broadcast(f, at, t, tat, n, 0)),
                    dtype + " broadcast from root 0");
            assertGuardedCopy(v, throughGuarded(dtype, v, (f, at, t, tat, n) -> {
                comm.groupStart();
                comm.send(f, at, n, 0);
                comm.receive(t, tat, n, 0);
                comm.groupEnd("send to self");
            }), dtype + " send and receive to this rank");
        }
    }

    @Test
    void oneRankInPlaceOpsLeaveTheBitsAndMarkTheTensorWritten() {
        for (DType dtype : new DType[] {DType.BF16, DType.F32}) {
            float[] v = values(10 + dtype.ordinal());
            CudaTensor t = tensor(dtype, v);
            long before = t.version;
            for (int at = 0; at < N; at += CHUNK) comm.allReduceSum(t, at, Math.min(CHUNK, N - at));
            for (int at = 0; at < N; at += CHUNK) comm.broadcast(t, at, Math.min(CHUNK, N - at), 0);
            comm.await(60_000, "chunked in-place ops");
            assertArrayEquals(v, gpu.download(t), dtype + ": a one-rank all-reduce and broadcast are the identity");
            // the all-reduce wrote the tensor (its bf16 copy for the tensor cores must be remade); the
            // root's own broadcast did not
            assertEquals(before + (N + CHUNK - 1) / CHUNK, t.version, dtype + " version");
            gpu.free(t);
        }
    }

    @Test
    void refusesWhatItCannotReach() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            Tensor host = cpu.allocate(DType.F32, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> comm.allReduceSum(host, 0, 4));
            assertTrue(e.getMessage().contains("which is not a CUDA tensor"), e.getMessage());
        }
        CudaTensor t = tensor(DType.BF16, new float[] {1, 2, 3});
        assertThrows(IndexOutOfBoundsException.class, () -> comm.broadcast(t, 2, 2, 0));
        CudaTensor f = tensor(DType.F32, new float[] {1, 2, 3});
        IllegalArgumentException mixed = assertThrows(IllegalArgumentException.class, () -> comm.allReduceSum(t, 0, f, 0, 3));
        assertTrue(mixed.getMessage().startsWith("NCCL moves elements as they are"), mixed.getMessage());
        gpu.free(t);
        gpu.free(f);
    }
}
