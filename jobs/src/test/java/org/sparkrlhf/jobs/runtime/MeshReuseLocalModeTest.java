package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.MeshConnections;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.Serializable;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Calls through {@link BarrierCallRunner} meeting at the driver's rendezvous and reusing their
 * mesh's connections, embedded (three CPU slots of one JVM, so the test sees the executor's
 * {@link MeshConnections}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MeshReuseLocalModeTest {
    private SparkContext sc;
    private BarrierCallRunner runner;
    private List<DeviceSlot> left;
    private List<DeviceSlot> right;

    /** What a rank saw: its mesh id, its communicator's identity, the all-reduced buffer. */
    record Seen(String meshId, int communicator, float[] sum) implements Serializable {
    }

    @BeforeAll
    void start() {
        sc = TestSpark.local("MeshReuseLocalModeTest", 3);
        runner = new BarrierCallRunner(sc, false, false, 30_000);
        ClusterInventory inventory = ClusterDiscovery.discover(sc, runner, 10_000);
        left = List.of(inventory.device(0), inventory.device(1));
        right = List.of(inventory.device(1), inventory.device(2)); // overlaps left on device 1
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    /** All-reduces {rank + 1, 100 * (rank + 1)} over the call's communicator; checks the sum on every rank. */
    private List<Seen> allReduce(List<DeviceSlot> mesh) {
        List<RankResult<Seen>> results = runner.run("allreduce", "mesh reuse test", mesh, List.of(1f, 2f),
                (context, x) -> {
                    Communicator c = context.communicator();
                    float[] buffer = {x, 100f * x};
                    c.allReduceSum(buffer);
                    return new Seen(context.meshId(), System.identityHashCode(c), buffer);
                });
        for (RankResult<Seen> r : results) {
            assertArrayEquals(new float[]{3f, 300f}, r.value().sum());
        }
        return results.stream().map(RankResult::value).toList();
    }

    @Test
    void aMeshIsReusedAcrossCallsAndOverlappingMeshesKeepTheirOwn() {
        List<Seen> a1 = allReduce(left);
        List<Seen> b1 = allReduce(right);
        List<Seen> a2 = allReduce(left);
        List<Seen> b2 = allReduce(right);
        assertNotEquals(a1.get(0).meshId(), b1.get(0).meshId());
        for (int r = 0; r < 2; r++) {
            assertEquals(a1.get(r).meshId(), a2.get(r).meshId());
            assertEquals(a1.get(r).communicator(), a2.get(r).communicator(), "left rank " + r + " connected again");
            assertEquals(b1.get(r).communicator(), b2.get(r).communicator(), "right rank " + r + " connected again");
        }
        // device 1 is rank 1 of left and rank 0 of right: two connections in one executor
        assertNotEquals(a1.get(1).communicator(), b1.get(0).communicator());
    }

    @Test
    void aReleasedMeshIsClosedAndConnectsAnewOnItsNextCall() {
        List<DeviceSlot> mesh = List.of(right.get(1), left.get(0)); // devices 2, 0: a mesh of its own
        List<Seen> before = allReduce(mesh);
        String id = before.get(0).meshId();
        assertTrue(MeshConnections.get().holds(id, 0) && MeshConnections.get().holds(id, 1));
        runner.releaseMesh(mesh);
        assertFalse(MeshConnections.get().holds(id, 0) || MeshConnections.get().holds(id, 1));
        List<Seen> after = allReduce(mesh);
        assertNotEquals(id, after.get(0).meshId());
    }

    @Test
    void afterAFailedCallTheMeshConnectsAnew() {
        List<DeviceSlot> mesh = List.of(left.get(1), left.get(0)); // devices 1, 0
        List<Seen> before = allReduce(mesh);
        // a checked SparkException, thrown through collect()
        Exception failed = assertThrows(Exception.class, () -> runner.run("failing", "a rank fails", mesh, List.of(0, 1),
                (context, rank) -> {
                    Communicator c = context.communicator();
                    if (rank == 1) {
                        throw new IllegalStateException("rank 1 fails on purpose");
                    }
                    c.allReduceSum(new float[]{1f}); // fails once rank 1 has closed its end
                    return rank;
                }));
        // whichever rank's failure Spark hears of first: rank 1's own, or rank 0's on rank 1's closed end
        assertTrue(failed.getMessage().contains("rank 1 fails on purpose")
                || failed.getMessage().contains("rank 1 closed the connection"), failed.getMessage());
        List<Seen> after = allReduce(mesh);
        assertEquals(before.get(0).meshId(), after.get(0).meshId());
        assertNotEquals(before.get(0).communicator(), after.get(0).communicator());
        assertNotEquals(before.get(1).communicator(), after.get(1).communicator());
    }

    @Test
    void aRankThatNeverArrivesFailsTheCallNamingItWithinTheTimeout() {
        // a runner of this application with a 1 s rendezvous timeout (spark.rlhf.comm.timeoutMs)
        BarrierCallRunner impatient = new BarrierCallRunner(sc, false, false, 1_000);
        List<DeviceSlot> mesh = List.of(left.get(0), right.get(1)); // devices 0, 2
        Exception failed = assertThrows(Exception.class, () -> impatient.run("late_rank", "a rank comes late", mesh,
                List.of(0, 1), (context, rank) -> {
                    if (rank == 1) {
                        Thread.sleep(2_500); // still busy when rank 0 gives up
                    }
                    return context.communicator().size();
                }));
        assertTrue(failed.getMessage().contains("call late_rank#"), failed.getMessage());
        assertTrue(failed.getMessage().contains("ranks [1] of 2 did not reach the driver's rendezvous"),
                failed.getMessage());
        impatient.close();
    }
}
