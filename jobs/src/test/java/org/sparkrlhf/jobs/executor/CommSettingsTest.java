package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The transport's settings as read from the Spark conf: defaults, a set limit, and each refusal naming the setting. */
class CommSettingsTest {
    @Test
    void unsetMeansOneGiBInTheClear() {
        assertEquals(new CommSettings(5_000, 1 << 30, false), CommSettings.parse(5_000, null, false));
        assertEquals(new CommSettings(5_000, 4096, true), CommSettings.parse(5_000, " 4096 ", true));
        assertEquals(2146959351, CommSettings.parse(5_000, "2146959351", false).maxFrameBytes());
    }

    @Test
    void malformedOrOutOfRangeLimitsAreRefusedNamingTheSetting() {
        assertEquals("spark.rlhf.comm.maxFrameBytes must be a number of bytes, not '1g'", refusal("1g"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not 0", refusal("0"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not -5", refusal("-5"));
        assertEquals("spark.rlhf.comm.maxFrameBytes must be between 1 and 2146959351 bytes, not 2146959352",
                refusal("2146959352"));
        assertEquals("spark.rlhf.comm.timeoutMs must be positive, not 0",
                assertThrows(IllegalArgumentException.class, () -> CommSettings.parse(0, null, false)).getMessage());
    }

    private static String refusal(String limit) {
        return assertThrows(IllegalArgumentException.class, () -> CommSettings.parse(5_000, limit, false)).getMessage();
    }
}
