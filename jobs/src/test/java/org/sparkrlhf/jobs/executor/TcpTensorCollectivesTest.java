package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The tensor collectives over the TCP mesh with chunks of 3 floats (smaller than every tensor), of
 * 100 floats (spanning tensors) and the default (one for all): all give the bits of the rank-order
 * sum or of the copy, and a subgroup chunks as its mesh does.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TcpTensorCollectivesTest {
    private static final int RANKS = 3;
    private static final CommSettings DEFAULT = CommSettings.of(20_000);
    private static final List<CommSettings> SETTINGS = List.of(DEFAULT.withChunkBytes(12), DEFAULT.withChunkBytes(400), DEFAULT);
    private static final int[][] SHAPES = {{7, 5}, {3}, {1, 11}, {4, 6}};
    private static final DType[] DTYPES = {DType.F32, DType.F32, DType.F32, DType.BF16};

    /** Gaussians for F32; small integers for BF16 (bf16-exact, and so are their sums). */
    private static float[] values(int rank, int i) {
        SplittableRandom random = new SplittableRandom(100L * rank + i);
        float[] v = new float[SHAPES[i][0] * (SHAPES[i].length > 1 ? SHAPES[i][1] : 1)];
        for (int k = 0; k < v.length; k++) {
            v[k] = DTYPES[i] == DType.BF16 ? random.nextInt(-40, 40) : (float) random.nextGaussian();
        }
        return v;
    }

    private static List<Tensor> upload(CpuBackend backend, int rank) {
        List<Tensor> tensors = new ArrayList<>();
        for (int i = 0; i < SHAPES.length; i++) {
            Tensor t = backend.allocate(DTYPES[i], SHAPES[i]);
            backend.upload(t, values(rank, i));
            tensors.add(t);
        }
        return tensors;
    }

    @Test
    void chunkedAllReduceBroadcastAndExchangeGiveTheUnchunkedBits() {
        for (CommSettings settings : SETTINGS) {
            String label = "chunk " + settings.chunkBytes() + " bytes";
            List<List<float[]>> results = TcpRanks.run(RANKS, settings, c -> {
                assertEquals(settings.chunkBytes(), c.subgroup(0, 1, 2).chunkBytes(), "a subgroup chunks as its mesh");
                List<float[]> out = new ArrayList<>();
                try (CpuBackend backend = new CpuBackend(1)) {
                    List<Tensor> summed = upload(backend, c.rank());
                    c.allReduceSum(backend, summed);
                    summed.forEach(t -> out.add(backend.download(t)));
                    List<Tensor> broadcast = upload(backend, c.rank());
                    broadcast.forEach(t -> c.broadcast(backend, t, 2));
                    broadcast.forEach(t -> out.add(backend.download(t)));
                    int next = (c.rank() + 1) % RANKS, previous = (c.rank() + RANKS - 1) % RANKS;
                    List<Tensor> mine = upload(backend, c.rank());
                    for (int i = 0; i < SHAPES.length; i++) {
                        Tensor into = backend.allocate(DTYPES[i], SHAPES[i]);
                        c.exchangeTensors(backend, Map.of(next, mine.get(i)), Map.of(previous, into));
                        out.add(backend.download(into));
                    }
                }
                return out;
            });
            int n = SHAPES.length;
            for (int i = 0; i < n; i++) {
                float[] sum = new float[values(0, i).length];
                for (int r = 0; r < RANKS; r++) {
                    float[] v = values(r, i);
                    for (int k = 0; k < sum.length; k++) {
                        sum[k] += v[k];
                    }
                }
                for (int r = 0; r < RANKS; r++) {
                    assertArrayEquals(sum, results.get(r).get(i), label + ": all-reduce, rank " + r + ", tensor " + i);
                    assertArrayEquals(values(2, i), results.get(r).get(n + i), label + ": broadcast, rank " + r + ", tensor " + i);
                    assertArrayEquals(values((r + RANKS - 1) % RANKS, i), results.get(r).get(2 * n + i),
                            label + ": exchange, rank " + r + ", tensor " + i);
                }
            }
        }
    }

    /** A reallocation's float messages, one of them empty, in chunks of 3 floats. */
    @Test
    void chunkedMessagesArriveWhole() {
        List<Map<Integer, float[]>> results = TcpRanks.run(RANKS, DEFAULT.withChunkBytes(12), c -> {
            Map<Integer, float[]> sends = new LinkedHashMap<>();
            Map<Integer, float[]> receives = new LinkedHashMap<>();
            for (int peer = RANKS - 1; peer >= 0; peer--) {
                if (peer != c.rank()) {
                    sends.put(peer, message(c.rank(), peer));
                    receives.put(peer, new float[message(peer, c.rank()).length]);
                }
            }
            c.exchange(sends, receives);
            return receives;
        });
        for (int r = 0; r < RANKS; r++) {
            for (int peer = 0; peer < RANKS; peer++) {
                if (peer != r) {
                    assertArrayEquals(message(peer, r), results.get(r).get(peer), "rank " + r + " from " + peer);
                }
            }
        }
    }

    private static float[] message(int from, int to) {
        float[] m = new float[from == 1 && to == 0 ? 0 : 50 * from + 7 * to + 2];
        for (int i = 0; i < m.length; i++) {
            m[i] = from * 1000 + to * 100 + i;
        }
        return m;
    }
}
