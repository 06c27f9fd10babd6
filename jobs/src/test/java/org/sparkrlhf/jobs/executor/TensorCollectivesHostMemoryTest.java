package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tensor collectives of a host transport (two TCP ranks, chunks of 64 floats) on tensors of
 * 1000 floats: the all-reduce, the broadcast, the all-gather and the pairwise exchange give the
 * values by hand, and no float array that goes into or out of the backend during them is longer
 * than a chunk (they move tensors by ranged copies, never whole).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TensorCollectivesHostMemoryTest {
    private static final int N = 1000, CHUNK_FLOATS = 64;

    /** Rank r's values: r * 10^4 + i, exact in float and in sums of two. */
    private static float[] values(int rank) {
        float[] v = new float[N];
        for (int i = 0; i < N; i++) {
            v[i] = rank * 10_000f + i;
        }
        return v;
    }

    private static Tensor tensor(Backend backend, float[] values) {
        Tensor t = backend.allocate(DType.F32, values.length);
        backend.upload(t, values);
        return t;
    }

    private record Result(float[] sum, float[] broadcast, float[] gathered, float[] exchanged, int largest) {
    }

    @Test
    void tensorsMoveAChunkAtATime() {
        List<Result> results = TcpRanks.run(2, CommSettings.of(20_000).withChunkBytes(CHUNK_FLOATS * 4), c -> {
            HostArrayCountingBackend counted = new HostArrayCountingBackend();
            Backend b = counted.backend;
            Tensor sum = tensor(b, values(c.rank())), broadcast = tensor(b, values(c.rank()));
            Tensor part = tensor(b, values(c.rank())), exchangedOut = tensor(b, values(c.rank()));
            Tensor gathered = b.allocate(DType.F32, 2 * N), exchangedIn = b.allocate(DType.F32, N);
            counted.reset();
            c.allReduceSum(b, List.of(sum));
            c.broadcast(b, broadcast, 1);
            c.allGather(b, part, gathered);
            c.exchangeTensors(b, Map.of(1 - c.rank(), exchangedOut), Map.of(1 - c.rank(), exchangedIn));
            int largest = counted.largest();
            return new Result(b.download(sum), b.download(broadcast), b.download(gathered), b.download(exchangedIn), largest);
        });
        float[] sum = new float[N], gathered = new float[2 * N];
        for (int i = 0; i < N; i++) {
            sum[i] = values(0)[i] + values(1)[i];
        }
        System.arraycopy(values(0), 0, gathered, 0, N);
        System.arraycopy(values(1), 0, gathered, N, N);
        for (int rank = 0; rank < 2; rank++) {
            Result r = results.get(rank);
            assertArrayEquals(sum, r.sum(), "all-reduce on rank " + rank);
            assertArrayEquals(values(1), r.broadcast(), "broadcast from rank 1 on rank " + rank);
            assertArrayEquals(gathered, r.gathered(), "all-gather on rank " + rank);
            assertArrayEquals(values(1 - rank), r.exchanged(), "exchange on rank " + rank);
            assertTrue(r.largest() > 0 && r.largest() <= CHUNK_FLOATS,
                    "rank " + rank + " moved a host array of " + r.largest() + " floats through its backend");
        }
    }
}
