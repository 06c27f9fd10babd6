package org.sparkrlhf.gpuexec.parallel;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The tensor collectives staged through host memory ({@link HostStaging}) over the in-process
 * group: with chunks smaller than every tensor, chunks that span tensors, and one chunk for all,
 * every result has the same bits, and those of the rank-order sum (or copy) computed here.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TensorCollectivesTest {
    private static final int RANKS = 3;
    /** 3 floats (smaller than every tensor), 100 floats (spans tensors), the default (one chunk for all). */
    private static final long[] CHUNKS = {12, 400, Collective.DEFAULT_CHUNK_BYTES};
    private static final int[][] SHAPES = {{7, 5}, {3}, {1, 11}, {4, 6}};
    private static final DType[] DTYPES = {DType.F32, DType.F32, DType.F32, DType.BF16};

    /** Rank r's values of tensor i: gaussians for F32, small integers (bf16-exact, and so are their sums) for BF16. */
    private static float[] values(int rank, int i) {
        SplittableRandom random = new SplittableRandom(100L * rank + i);
        int n = SHAPES[i][0] * (SHAPES[i].length > 1 ? SHAPES[i][1] : 1);
        float[] v = new float[n];
        for (int k = 0; k < n; k++) {
            v[k] = DTYPES[i] == DType.BF16 ? random.nextInt(-40, 40) : (float) random.nextGaussian();
        }
        return v;
    }

    private static List<Tensor> upload(Backend backend, int rank) {
        List<Tensor> tensors = new ArrayList<>();
        for (int i = 0; i < SHAPES.length; i++) {
            Tensor t = backend.allocate(DTYPES[i], SHAPES[i]);
            backend.upload(t, values(rank, i));
            tensors.add(t);
        }
        return tensors;
    }

    @Test
    void chunkedAllReduceIsTheRankOrderSumBitForBit() {
        for (long chunk : CHUNKS) {
            List<List<float[]>> results = onRanks(chunk, (group, backend) -> {
                List<Tensor> tensors = upload(backend, group.rank());
                group.allReduceSum(backend, tensors);
                return tensors.stream().map(backend::download).toList();
            });
            for (int i = 0; i < SHAPES.length; i++) {
                float[] want = new float[values(0, i).length];
                for (int r = 0; r < RANKS; r++) {
                    float[] v = values(r, i);
                    for (int k = 0; k < want.length; k++) {
                        want[k] += v[k];
                    }
                }
                for (int r = 0; r < RANKS; r++) {
                    assertArrayEquals(want, results.get(r).get(i), "chunk " + chunk + ", rank " + r + ", tensor " + i);
                }
            }
        }
    }

    @Test
    void chunkedBroadcastCopiesTheRootsTensorsExactly() {
        for (long chunk : CHUNKS) {
            List<List<float[]>> results = onRanks(chunk, (group, backend) -> {
                List<Tensor> tensors = upload(backend, group.rank());
                for (Tensor t : tensors) {
                    group.broadcast(backend, t, 1);
                }
                return tensors.stream().map(backend::download).toList();
            });
            for (int r = 0; r < RANKS; r++) {
                for (int i = 0; i < SHAPES.length; i++) {
                    assertArrayEquals(values(1, i), results.get(r).get(i), "chunk " + chunk + ", rank " + r + ", tensor " + i);
                }
            }
        }
    }

    /** Every rank's tensor i, in rank order, in every rank's gathered tensor; the own part too. */
    @Test
    void chunkedAllGatherPutsEveryRanksPartInPlace() {
        for (long chunk : CHUNKS) {
            List<List<float[]>> results = onRanks(chunk, (group, backend) -> {
                List<float[]> got = new ArrayList<>();
                List<Tensor> mine = upload(backend, group.rank());
                for (int i = 0; i < SHAPES.length; i++) {
                    Tensor all = backend.allocate(DTYPES[i], RANKS, (int) mine.get(i).numel());
                    group.allGather(backend, mine.get(i), all);
                    got.add(backend.download(all));
                }
                return got;
            });
            for (int i = 0; i < SHAPES.length; i++) {
                int n = values(0, i).length;
                float[] want = new float[RANKS * n];
                for (int r = 0; r < RANKS; r++) System.arraycopy(values(r, i), 0, want, r * n, n);
                for (int r = 0; r < RANKS; r++) {
                    assertArrayEquals(want, results.get(r).get(i), "chunk " + chunk + ", rank " + r + ", tensor " + i);
                }
            }
        }
    }

    /** A pipeline's chain: rank r receives r - 1's tensors (rank 0 starts with its own) and sends them on to r + 1. */
    @Test
    void chunkedSendAndReceiveCarryTensorsDownAChain() {
        for (long chunk : CHUNKS) {
            List<List<float[]>> results = onRanks(chunk, (group, backend) -> {
                List<Tensor> carried = upload(backend, group.rank());
                if (group.rank() > 0) {
                    for (Tensor t : carried) group.recvTensor(backend, t, group.rank() - 1);
                }
                if (group.rank() < RANKS - 1) {
                    for (Tensor t : carried) group.sendTensor(backend, t, group.rank() + 1);
                }
                return carried.stream().map(backend::download).toList();
            });
            for (int r = 0; r < RANKS; r++) {
                for (int i = 0; i < SHAPES.length; i++) {
                    assertArrayEquals(values(0, i), results.get(r).get(i), "chunk " + chunk + ", rank " + r + ", tensor " + i);
                }
            }
        }
    }

    /** A ring: rank r sends its tensor i to r + 1 and receives r - 1's into a fresh tensor. */
    @Test
    void chunkedExchangeMovesEachTensorToItsPeer() {
        for (long chunk : CHUNKS) {
            List<List<float[]>> results = onRanks(chunk, (group, backend) -> {
                int next = (group.rank() + 1) % RANKS, previous = (group.rank() + RANKS - 1) % RANKS;
                List<Tensor> mine = upload(backend, group.rank());
                List<float[]> got = new ArrayList<>();
                for (int i = 0; i < SHAPES.length; i++) {
                    Tensor into = backend.allocate(DTYPES[i], SHAPES[i]);
                    group.exchangeTensors(backend, Map.of(next, mine.get(i)), Map.of(previous, into));
                    got.add(backend.download(into));
                }
                return got;
            });
            for (int r = 0; r < RANKS; r++) {
                for (int i = 0; i < SHAPES.length; i++) {
                    assertArrayEquals(values((r + RANKS - 1) % RANKS, i), results.get(r).get(i),
                            "chunk " + chunk + ", rank " + r + ", tensor " + i);
                }
            }
        }
    }

    /** Messages of different lengths (an empty one among them) between every pair, in chunks of 3 floats. */
    @Test
    void messagesOfAnyLengthArriveWhole() {
        List<Map<Integer, float[]>> results = onRanks(12, (group, backend) -> {
            Map<Integer, FloatMessage> sends = new java.util.LinkedHashMap<>();
            Map<Integer, float[]> received = new java.util.LinkedHashMap<>();
            Map<Integer, FloatMessage> receives = new java.util.LinkedHashMap<>();
            for (int peer = 0; peer < RANKS; peer++) {
                if (peer != group.rank()) {
                    sends.put(peer, FloatMessage.of(message(group.rank(), peer)));
                    float[] into = new float[message(peer, group.rank()).length];
                    received.put(peer, into);
                    receives.put(peer, FloatMessage.of(into));
                }
            }
            group.exchangeMessages(sends, receives);
            return received;
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
        float[] m = new float[from == 0 && to == 2 ? 0 : 5 * from + 3 * to + 1];
        for (int i = 0; i < m.length; i++) {
            m[i] = from * 1000 + to * 100 + i;
        }
        return m;
    }

    @Test
    void integerTensorsAreRefusedOnTheHostPath() {
        try (CpuBackend backend = new CpuBackend(1)) {
            Tensor ids = backend.allocate(DType.I32, 3);
            Collective two = new InProcessGroup(2).member(0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> two.allReduceSum(backend, ids));
            assertEquals("all-reduce through host memory takes float tensors, not I32[3]", e.getMessage());
        }
    }

    interface RankBody<R> {
        R run(Collective group, Backend backend);
    }

    /** Runs {@code body} on every rank of an in-process group whose tensor collectives move {@code chunkBytes} at a time. */
    private static <R> List<R> onRanks(long chunkBytes, RankBody<R> body) {
        InProcessGroup group = new InProcessGroup(RANKS);
        ExecutorService pool = Executors.newFixedThreadPool(RANKS);
        try {
            List<Future<R>> futures = new ArrayList<>();
            for (int r = 0; r < RANKS; r++) {
                Collective member = chunked(group.member(r), chunkBytes);
                futures.add(pool.submit(() -> {
                    try (CpuBackend backend = new CpuBackend(1)) {
                        return body.run(member, backend);
                    }
                }));
            }
            List<R> results = new ArrayList<>();
            for (Future<R> f : futures) {
                results.add(f.get(60, TimeUnit.SECONDS));
            }
            return results;
        } catch (Exception e) {
            throw new AssertionError(e);
        } finally {
            pool.shutdownNow();
        }
    }

    /** {@code member} with its tensor collectives chunked at {@code chunkBytes}. */
    private static Collective chunked(Collective member, long chunkBytes) {
        return new Collective() {
            @Override
            public int rank() {
                return member.rank();
            }

            @Override
            public int size() {
                return member.size();
            }

            @Override
            public long chunkBytes() {
                return chunkBytes;
            }

            @Override
            public void sendFloats(int peer, float[] values, int offset, int length) {
                member.sendFloats(peer, values, offset, length);
            }

            @Override
            public void recvFloats(int peer, float[] into, int offset, int length) {
                member.recvFloats(peer, into, offset, length);
            }

            @Override
            public void allReduceSum(float[] buffer) {
                member.allReduceSum(buffer);
            }

            @Override
            public void broadcast(float[] buffer, int root) {
                member.broadcast(buffer, root);
            }
        };
    }
}
