package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.TcpCommunicator;

import java.io.Serializable;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A cluster that asks Spark to encrypt its traffic ({@code spark.network.crypto.enabled}) gets its
 * rank transport encrypted too: a call's ranks connect an encrypted TCP mesh and all-reduce through
 * it exactly. The frame limit ({@code spark.rlhf.comm.maxFrameBytes}) reaches the ranks from the
 * driver's conf: a message one byte over it is refused, naming the limit; a malformed limit stops
 * the runner before any call. The chunk of tensor collectives ({@code spark.rlhf.comm.chunkBytes})
 * reaches them the same way.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RankTransportEncryptionTest {
    private static final int LIMIT = 4096;
    private SparkContext sc;
    private BarrierCallRunner runner;

    /** What a rank saw: whether its mesh is encrypted, the all-reduced buffer, its chunk. */
    record Seen(boolean encrypted, float[] sum, long chunkBytes) implements Serializable {
    }

    @BeforeAll
    void start() {
        SparkConf conf = new SparkConf()
                .setMaster("local[2]")
                .setAppName("RankTransportEncryptionTest")
                .set("spark.authenticate", "true")
                .set("spark.network.crypto.enabled", "true")
                .set("spark.rlhf.comm.maxFrameBytes", Integer.toString(LIMIT))
                .set("spark.rlhf.comm.chunkBytes", "1024")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1");
        sc = new SparkContext(conf);
        runner = new BarrierCallRunner(sc, false, false, 30_000);
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    @Test
    void aCallsRanksAllReduceOverAnEncryptedMesh() {
        List<RankResult<Seen>> results = runner.run("allreduce", "encrypted mesh", null, List.of(1f, 2f),
                (context, x) -> {
                    Communicator c = context.communicator();
                    float[] buffer = {x, 0.1f * x, -3.25f * x};
                    c.allReduceSum(buffer);
                    return new Seen(((TcpCommunicator) c).encrypted(), buffer, c.chunkBytes());
                });
        assertEquals(2, results.size());
        for (RankResult<Seen> r : results) {
            assertTrue(r.value().encrypted());
            assertEquals(1024, r.value().chunkBytes());
            assertArrayEquals(new float[]{3f, 0.1f * 1f + 0.1f * 2f, -3.25f * 3f}, r.value().sum());
        }
    }

    @Test
    void aMessageOverTheConfiguredFrameLimitIsRefused() {
        Exception failed = assertThrows(Exception.class, () -> runner.run("too_big", "frame limit", null,
                List.of(LIMIT, LIMIT + 1), (context, bytes) -> {
                    Communicator c = context.communicator();
                    if (context.rank() == 1) {
                        c.send(0, new byte[bytes]);
                    }
                    return bytes;
                }));
        assertTrue(failed.getMessage().contains("rank 1: a message of " + (LIMIT + 1) + " bytes to rank 0 is over the "
                + "frame limit of " + LIMIT + " bytes"), failed.getMessage());
        // a message at the limit passes
        List<RankResult<Integer>> ok = runner.run("at_limit", "frame limit", null, List.of(LIMIT, LIMIT),
                (context, bytes) -> {
                    Communicator c = context.communicator();
                    if (context.rank() == 1) {
                        c.send(0, new byte[bytes]);
                        return bytes;
                    }
                    return c.recv(1).length;
                });
        assertEquals(LIMIT, ok.get(0).value());
    }
}
