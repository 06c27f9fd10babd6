package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * A reallocation's message moved through chunks held on a backend, as the NCCL transport moves it:
 * the last three columns of a 5 x 7 weight (two pieces) and a bias of 6 read from a source's
 * tensors into a chunk tensor 3 floats at a time (chunks that start and end mid-row), and written
 * from such chunks into a destination's tensors. Slices on the chunk's backend go by ranged copies
 * on it; slices elsewhere (another backend's tensors, host arrays) through a host array of a chunk.
 * Either way the chunks hold the message by hand, and the destination the columns it was cut from.
 */
class PieceMessageDeviceChunkTest {
    private static final List<ShardPiece> PIECES = PieceMessageTest.PIECES;
    private static final int CHUNK = 3;

    private static float[] source(String name) {
        return PieceMessageTest.source(name);
    }

    private static float[] expected() {
        return PieceMessageTest.expected();
    }

    private static ShardSlices onBackend(Backend backend, Map<String, float[]> values) {
        Map<String, Tensor> tensors = new java.util.LinkedHashMap<>();
        values.forEach((name, v) -> {
            Tensor t = backend.allocate(DType.F32, v.length);
            backend.upload(t, v);
            tensors.put(name, t);
        });
        return ShardSlices.ofTensors(backend, tensors::get);
    }

    @Test
    void chunksOnTheBackendCarryTheMessageWhereverTheSlicesAre() {
        CpuBackend chunks = new CpuBackend(), elsewhere = new CpuBackend();
        Map<String, float[]> sourceValues = Map.of("w", source("w"), "b", source("b"));
        float[] want = expected();
        for (ShardSlices from : List.of(onBackend(chunks, sourceValues), onBackend(elsewhere, sourceValues),
                ShardSlices.ofArrays(PieceMessageDeviceChunkTest::source))) {
            PieceMessage message = new PieceMessage(PIECES, from);
            Tensor chunk = chunks.allocate(DType.F32, CHUNK);
            for (int at = 0; at < want.length; at += CHUNK) {
                int n = message.chunkLength(at, CHUNK);
                message.read(at, chunks, chunk, n);
                float[] got = new float[n];
                chunks.downloadRange(chunk, 0, got, 0, n);
                assertArrayEquals(Arrays.copyOfRange(want, at, at + n), got, "elements " + at + " .. " + (at + n));
            }
        }
        Map<String, float[]> empty = Map.of("w", new float[15], "b", new float[6]);
        for (Backend destinationOn : List.of(chunks, elsewhere)) {
            Map<String, Tensor> shard = Map.of("w", destinationOn.allocate(DType.F32, 5, 3), "b", destinationOn.allocate(DType.F32, 6));
            PieceMessage message = new PieceMessage(PIECES, ShardSlices.ofTensors(destinationOn, shard::get));
            writeInChunks(message, chunks, want);
            assertArrayEquals(Arrays.copyOfRange(want, 0, 15), destinationOn.download(shard.get("w")));
            assertArrayEquals(Arrays.copyOfRange(want, 15, 21), destinationOn.download(shard.get("b")));
        }
        Map<String, float[]> arrays = Map.of("w", empty.get("w").clone(), "b", empty.get("b").clone());
        writeInChunks(new PieceMessage(PIECES, ShardSlices.ofArrays(arrays::get)), chunks, want);
        assertArrayEquals(Arrays.copyOfRange(want, 0, 15), arrays.get("w"));
        assertArrayEquals(Arrays.copyOfRange(want, 15, 21), arrays.get("b"));
    }

    /** The message as chunks received on {@code chunks}' side, each written into the destination's slices. */
    private static void writeInChunks(PieceMessage message, Backend chunks, float[] values) {
        Tensor chunk = chunks.allocate(DType.F32, CHUNK);
        for (int at = 0; at < values.length; at += CHUNK) {
            int n = message.chunkLength(at, CHUNK);
            chunks.uploadRange(chunk, 0, values, at, n);
            message.write(at, chunks, chunk, n);
        }
    }
}
