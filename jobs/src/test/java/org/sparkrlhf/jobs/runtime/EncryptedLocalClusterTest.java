package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkContext;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.TcpCommunicator;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Spark's own authentication and encryption on, on real executor JVMs: the run secret reaches the
 * executors in the (now authenticated, encrypted) task closure, and a call's ranks on two
 * executors all-reduce exactly over an encrypted mesh.
 */
@Tag("local-cluster")
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class EncryptedLocalClusterTest {
    record Seen(String executor, boolean encrypted, float[] sum) implements Serializable {
    }

    @Test
    void ranksOnTwoExecutorsAllReduceOverAnEncryptedMesh() {
        SparkContext sc = TestSpark.localCluster("EncryptedLocalClusterTest", Map.of(
                "spark.authenticate", "true",
                "spark.authenticate.secret", "a-test-secret-for-spark-itself",
                "spark.network.crypto.enabled", "true"));
        try (BarrierCallRunner runner = new BarrierCallRunner(sc, true,
                BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), 60_000)) {
            ClusterInventory inventory = ClusterDiscovery.discover(sc, runner, 60_000);
            // devices 1 and 2 are on different executors
            List<DeviceSlot> mesh = List.of(inventory.device(1), inventory.device(2));
            List<RankResult<Seen>> results = runner.run("allreduce", "encrypted all-reduce", mesh,
                    List.of(new float[]{1f, 2.5f}, new float[]{10f, -0.25f}), (context, input) -> {
                        float[] buffer = input.clone();
                        context.communicator().allReduceSum(buffer);
                        return new Seen(context.executorId(), ((TcpCommunicator) context.communicator()).encrypted(), buffer);
                    });
            assertEquals(2, results.size());
            assertNotEquals(results.get(0).value().executor(), results.get(1).value().executor());
            for (RankResult<Seen> r : results) {
                assertTrue(r.value().encrypted(), "rank " + r.rank());
                assertArrayEquals(new float[]{11f, 2.25f}, r.value().sum());
            }
        } finally {
            sc.stop();
        }
    }
}
