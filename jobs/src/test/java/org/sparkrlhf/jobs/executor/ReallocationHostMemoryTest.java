package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A reallocation's destination receives into tensors of its backend and holds no whole tensor on
 * the host: a whole copy on device 0 (a 40 x 30 weight w and a bias b of 50, on a backend of its own)
 * is cut into two shards of w's columns 0-14 and 15-29 with all of b, device 0 keeping its shard
 * (a copy on the device) and sending the other to device 1 over TCP in chunks of 64 floats, which
 * start and end mid-row. Every float array that goes into or out of either rank's backends during
 * the move (the source's reads, the destination's writes) is at most a chunk long, where w alone is
 * 1200 floats, and the shards hold exactly the columns cut from the source.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ReallocationHostMemoryTest {
    private static final int ROWS = 40, COLS = 30, HALF = 15, BIAS = 50, CHUNK_FLOATS = 64;

    private static final List<ShardPiece> PIECES = List.of(
            new ShardPiece("w", 0, 0, ROWS, HALF, 0, 0, COLS, 0, 0, HALF),
            new ShardPiece("w", 0, 1, ROWS, HALF, 0, HALF, COLS, 0, 0, HALF),
            new ShardPiece("b", 0, 0, BIAS, 1, 0, 0, 1, 0, 0, 1),
            new ShardPiece("b", 0, 1, BIAS, 1, 0, 0, 1, 0, 0, 1));

    private static float[] sourceW() {
        float[] w = new float[ROWS * COLS];
        for (int i = 0; i < w.length; i++) {
            w[i] = 1000 + i;
        }
        return w;
    }

    private static float[] sourceB() {
        float[] b = new float[BIAS];
        for (int i = 0; i < b.length; i++) {
            b[i] = -1 - i;
        }
        return b;
    }

    /** Rank {@code rank}'s request: the pieces it sends or receives (rank r is device r). */
    private static ReallocationCall.Request request(int rank, List<ShardPiece> all) {
        List<ShardPiece> pieces = all.stream().filter(p -> p.srcDevice() == rank || p.dstDevice() == rank).toList();
        return new ReallocationCall.Request("w", new int[] {0, 1}, new String[] {"e0", "e1"},
                rank == 0 ? new ModelStore.Key("w", 1, "whole", 0) : null, new ModelStore.Key("w", 1, "tp2", rank),
                List.of("w", "b"), new int[][] {{ROWS, HALF}, {BIAS, 1}}, pieces, ReallocationCall.Build.TENSORS, null,
                null, null, false, ShardTensors.View.WEIGHTS);
    }

    /** The source: a whole copy as tensors of a backend of its own (so its reads are counted too). */
    private static ShardSet source(HostArrayCountingBackend on) {
        Tensor w = on.backend.allocate(DType.F32, ROWS, COLS), b = on.backend.allocate(DType.F32, BIAS, 1);
        on.backend.upload(w, sourceW());
        on.backend.upload(b, sourceB());
        return ShardSet.onBackend(on.backend, Map.of("w", w, "b", b), null);
    }

    private record RankRun(Map<String, float[]> shard, int largest) {
    }

    @Test
    void theDestinationHoldsNoHostArrayLargerThanAChunk() {
        List<RankRun> runs = TcpRanks.run(2, CommSettings.of(20_000).withChunkBytes(CHUNK_FLOATS * 4), c -> {
            HostArrayCountingBackend destination = new HostArrayCountingBackend();
            HostArrayCountingBackend sourceBackend = new HostArrayCountingBackend();
            ShardSet source = c.rank() == 0 ? source(sourceBackend) : null;
            sourceBackend.reset();
            ReallocationCall.Outcome outcome = ReallocationCall.move(request(c.rank(), PIECES), c.rank(),
                    destination.backend, () -> c, source);
            int largest = Math.max(destination.largest(), sourceBackend.largest());
            ShardSet shard = assertInstanceOf(ShardSet.class, outcome.built());
            return new RankRun(new LinkedHashMap<>(shard.tensors()), largest);
        });
        float[] w = sourceW();
        for (int rank = 0; rank < 2; rank++) {
            float[] want = new float[ROWS * HALF];
            for (int r = 0; r < ROWS; r++) {
                System.arraycopy(w, r * COLS + rank * HALF, want, r * HALF, HALF);
            }
            assertArrayEquals(want, runs.get(rank).shard().get("w"), "w's columns on device " + rank);
            assertArrayEquals(sourceB(), runs.get(rank).shard().get("b"), "b on device " + rank);
            assertTrue(runs.get(rank).largest() > 0 && runs.get(rank).largest() <= CHUNK_FLOATS,
                    "rank " + rank + " moved a host array of " + runs.get(rank).largest() + " floats through its backends");
        }
    }

    @Test
    void aPieceMissingFailsAndFreesTheDestination() {
        List<ShardPiece> withoutB = PIECES.subList(0, 3); // device 1 never gets b
        List<String> errors = TcpRanks.run(2, CommSettings.of(20_000).withChunkBytes(CHUNK_FLOATS * 4), c -> {
            HostArrayCountingBackend destination = new HostArrayCountingBackend();
            ShardSet source = c.rank() == 0 ? source(new HostArrayCountingBackend()) : null;
            if (c.rank() == 0) {
                ReallocationCall.move(request(0, withoutB), 0, destination.backend, () -> c, source);
                return "";
            }
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> ReallocationCall.move(request(1, withoutB), 1, destination.backend, () -> c, null));
            assertEquals(0, destination.cpu.liveBytes(), "the destination's tensors were freed");
            return e.getMessage();
        });
        assertTrue(errors.get(1).contains("0 of 50 elements of b arrived"), errors.get(1));
    }
}
