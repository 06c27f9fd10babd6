package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The transport's settings as read from the Spark conf: defaults, a set limit, and each refusal naming the setting. */
class CommSettingsTest {
    @Test
    void unsetMeansOneGiBInTheClear() {
        assertEquals(new CommSettings(5_000, 1 << 30, false), CommSettings.parse(5_000, null, null, false));
        assertEquals(new CommSettings(5_000, 4096, true), CommSettings.parse(5_000, " 4096 ", null, true));
        assertEquals(2146959351, CommSettings.parse(5_000, "2146959351", null, false).maxFrameBytes());
    }

    @Test
    void malformedOrOutOfRangeLimitsAreRefusedNamingTheSetting() {
        assertEquals("spark.rlhf.comm.maxFrameBytes must be a number of bytes, not '1g'", refusal("1g"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not 0", refusal("0"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not -5", refusal("-5"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not 2146959352",
                refusal("2146959352"));
        assertEquals("spark.rlhf.comm.timeoutMs must be positive, not 0",
                assertThrows(IllegalArgumentException.class, () -> CommSettings.parse(0, null, null, false)).getMessage());
    }

    @Test
    void chunksDefaultTo64MiBOrTheFrameLimitAndMustFitAFrame() {
        assertEquals(64 << 20, CommSettings.parse(5_000, null, null, false).chunkBytes());
        assertEquals(4096, CommSettings.parse(5_000, "4096", null, false).chunkBytes(), "no larger than a frame");
        assertEquals(4, CommSettings.parse(5_000, "4099", null, false).withChunkBytes(4).chunkBytes());
        assertEquals(1 << 20, CommSettings.parse(5_000, null, " 1048576 ", false).chunkBytes());
        assertEquals("spark.rlhf.comm.chunkBytes must be a number of bytes, not '64m'", assertThrows(
                IllegalArgumentException.class, () -> CommSettings.parse(5_000, null, "64m", false)).getMessage());
        assertEquals("spark.rlhf.comm.chunkBytes must be between 4 and the frame limit 4096 bytes "
                + "(spark.rlhf.comm.maxFrameBytes), not 8192", assertThrows(IllegalArgumentException.class,
                () -> CommSettings.parse(5_000, "4096", "8192", false)).getMessage());
        assertEquals("spark.rlhf.comm.chunkBytes must be between 4 and the frame limit 1073741824 bytes "
                + "(spark.rlhf.comm.maxFrameBytes), not 3", assertThrows(IllegalArgumentException.class,
                () -> CommSettings.parse(5_000, null, "3", false)).getMessage());
    }

    private static String refusal(String limit) {
        return assertThrows(IllegalArgumentException.class, () -> CommSettings.parse(5_000, limit, null, false)).getMessage();
    }
}
