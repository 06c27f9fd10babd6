package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.rendezvous.RendezvousClient;
import org.sparkrlhf.jobs.rendezvous.RendezvousServer;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Communicators kept per mesh across calls, with the calls' ranks as threads meeting at a real rendezvous. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MeshConnectionsTest {
    private final RendezvousServer server = RendezvousServer.start("127.0.0.1", "127.0.0.1", 0, 10_000, RunSecret.generate());
    private final ExecutorService threads = Executors.newCachedThreadPool();
    private final MeshConnections connections = new MeshConnections();
    private final AtomicLong calls = new AtomicLong();

    @AfterEach
    void stop() {
        connections.releaseAll("test:");
        server.close();
        threads.shutdownNow();
    }

    /**
     * One two-rank call on {@code meshId}: each rank connects through the mesh's kept connections
     * and all-reduces {rank + 1, 10 * (rank + 1)}; returns the ranks' communicators after checking the sums.
     */
    private List<Communicator> call(String meshId) throws Exception {
        String callId = "c#" + calls.incrementAndGet() + " attempt 0";
        List<Future<Communicator>> ranks = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int rank = r;
            ranks.add(threads.submit(() -> {
                Rendezvous rendezvous = new RendezvousClient(server.address(), callId, rank, 2, 10_000, () -> false);
                Communicator c = connections.connect(meshId, rank, rendezvous,
                        through -> TcpCommunicator.connect(rank, 2, "127.0.0.1", through, 10_000));
                float[] buffer = {rank + 1, 10f * (rank + 1)};
                c.allReduceSum(buffer);
                assertArrayEquals(new float[]{3f, 30f}, buffer);
                return c;
            }));
        }
        List<Communicator> out = new ArrayList<>();
        for (Future<Communicator> f : ranks) {
            out.add(f.get());
        }
        return out;
    }

    @Test
    void aMeshIsReusedAcrossCallsUntilReleased() throws Exception {
        List<Communicator> first = call("test:m0");
        List<Communicator> second = call("test:m0");
        assertSame(first.get(0), second.get(0));
        assertSame(first.get(1), second.get(1));
        connections.release("test:m0");
        assertFalse(connections.holds("test:m0", 0));
        assertFalse(connections.holds("test:m0", 1));
        List<Communicator> third = call("test:m0");
        assertNotSame(first.get(0), third.get(0));
    }

    @Test
    void overlappingMeshesKeepTheirOwnConnections() throws Exception {
        // devices (d0, d1) and (d1, d2): the executor of d1 keeps a rank of each
        List<Communicator> left = call("test:m1");
        List<Communicator> right = call("test:m2");
        List<Communicator> leftAgain = call("test:m1");
        List<Communicator> rightAgain = call("test:m2");
        assertNotSame(left.get(1), right.get(0));
        assertSame(left.get(0), leftAgain.get(0));
        assertSame(left.get(1), leftAgain.get(1));
        assertSame(right.get(0), rightAgain.get(0));
        assertSame(right.get(1), rightAgain.get(1));
    }

    @Test
    void disjointMeshesConnectAtTheSameTime() throws Exception {
        Future<List<Communicator>> a = threads.submit(() -> call("test:m3"));
        Future<List<Communicator>> b = threads.submit(() -> call("test:m4"));
        assertNotSame(a.get().get(0), b.get().get(0));
        assertTrue(connections.holds("test:m3", 0) && connections.holds("test:m4", 1));
    }

    @Test
    void whenOneRankNoLongerHoldsTheMeshEveryRankConnectsAnew() throws Exception {
        List<Communicator> first = call("test:m5");
        connections.discard("test:m5", 1); // rank 1's call failed (or it ran on another executor)
        List<Communicator> second = call("test:m5");
        assertNotSame(first.get(0), second.get(0));
        assertNotSame(first.get(1), second.get(1));
        List<Communicator> third = call("test:m5");
        assertSame(second.get(0), third.get(0));
    }

    @Test
    void aFailedTaskThatUnwindsLateClosesOnlyItsOwnCommunicator() throws Exception {
        List<Communicator> first = call("test:m6");
        connections.discard("test:m6", 1);
        List<Communicator> second = call("test:m6"); // connected anew while rank 0 of the first call still ran
        connections.discard("test:m6", 0, first.get(0));
        assertTrue(connections.holds("test:m6", 0));
        assertSame(second.get(0), call("test:m6").get(0));
    }
}
