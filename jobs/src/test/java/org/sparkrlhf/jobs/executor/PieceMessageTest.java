package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A reallocation's message read and written by ranges: the last three columns of a 5 x 7 weight
 * (in two pieces, rows 0-1 and 2-4) and a whole bias of 6 go from a whole copy to a shard three
 * columns wide. Every range reads the elements of the pieces one after the other, and the message
 * moved over TCP in chunks of 3 floats (which start and end mid-row) fills the shard exactly.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PieceMessageTest {
    /** A column cut of w (two row bands) and the whole of b: the pieces PieceMessageDeviceChunkTest moves too. */
    static final List<ShardPiece> PIECES = List.of(
            new ShardPiece("w", 0, 1, 2, 3, 0, 4, 7, 0, 0, 3),
            new ShardPiece("w", 0, 1, 3, 3, 2, 4, 7, 2, 0, 3),
            new ShardPiece("b", 0, 1, 6, 1, 0, 0, 1, 0, 0, 1));

    static float[] source(String name) {
        float[] t = new float[name.equals("w") ? 35 : 6];
        for (int i = 0; i < t.length; i++) {
            t[i] = (name.equals("w") ? 100 : 200) + i;
        }
        return t;
    }

    /** The message by hand: w's columns 4..6 row by row, then b. */
    static float[] expected() {
        float[] m = new float[21];
        int at = 0;
        for (int r = 0; r < 5; r++) {
            for (int c = 4; c < 7; c++) {
                m[at++] = 100 + r * 7 + c;
            }
        }
        for (int i = 0; i < 6; i++) {
            m[at++] = 200 + i;
        }
        return m;
    }

    @Test
    void everyRangeReadsThePiecesInOrder() {
        PieceMessage message = new PieceMessage(PIECES, PieceMessageTest::source);
        float[] want = expected();
        assertEquals(want.length, message.length());
        for (int from = 0; from <= want.length; from++) {
            for (int n = 0; from + n <= want.length; n++) {
                float[] got = new float[n + 2];
                message.read(from, got, 1, n);
                assertArrayEquals(Arrays.copyOfRange(want, from, from + n), Arrays.copyOfRange(got, 1, n + 1),
                        "elements " + from + " .. " + (from + n));
            }
        }
    }

    @Test
    void aMessageMovedInChunksOfThreeFloatsFillsTheShard() {
        List<Map<String, float[]>> got = TcpRanks.run(2, CommSettings.of(20_000).withChunkBytes(12), c -> {
            Map<String, float[]> shard = Map.of("w", new float[15], "b", new float[6]);
            if (c.rank() == 0) {
                c.exchangeMessages(Map.of(1, new PieceMessage(PIECES, PieceMessageTest::source)), Map.<Integer, FloatMessage>of());
            } else {
                c.exchangeMessages(Map.<Integer, FloatMessage>of(), Map.of(0, new PieceMessage(PIECES, shard::get)));
            }
            return shard;
        });
        float[] want = expected();
        assertArrayEquals(Arrays.copyOfRange(want, 0, 15), got.get(1).get("w"));
        assertArrayEquals(Arrays.copyOfRange(want, 15, 21), got.get(1).get("b"));
    }
}
