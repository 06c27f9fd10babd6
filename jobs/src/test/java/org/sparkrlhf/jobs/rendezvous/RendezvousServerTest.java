package org.sparkrlhf.jobs.rendezvous;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.RunSecret;

import java.io.DataOutputStream;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver's rendezvous with ranks as threads of this JVM. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RendezvousServerTest {
    private static final long TIMEOUT_MS = 2_000;

    private RendezvousServer server;
    private final ExecutorService ranks = Executors.newCachedThreadPool();

    @BeforeEach
    void start() {
        server = RendezvousServer.start("127.0.0.1", "127.0.0.1", 0, TIMEOUT_MS, RunSecret.generate());
    }

    @AfterEach
    void stop() {
        server.close();
        ranks.shutdownNow();
    }

    private RendezvousClient client(String callId, int rank, int world) {
        return new RendezvousClient(server.address(), callId, rank, world, TIMEOUT_MS, () -> false);
    }

    /** Starts {@code world} ranks of {@code callId}, each gathering "<tag><rank>" {@code rounds} times. */
    private List<Future<List<String[]>>> call(String callId, int world, int rounds, String tag) {
        List<Future<List<String[]>>> out = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            int rank = r;
            out.add(ranks.submit(() -> {
                RendezvousClient c = client(callId, rank, world);
                List<String[]> all = new ArrayList<>();
                for (int round = 0; round < rounds; round++) {
                    all.add(c.allGather(tag + rank + "." + round));
                }
                return all;
            }));
        }
        return out;
    }

    private static void assertGathered(List<Future<List<String[]>>> ranks, String tag, int rounds) throws Exception {
        for (Future<List<String[]>> f : ranks) {
            List<String[]> all = f.get();
            assertEquals(rounds, all.size());
            for (int round = 0; round < rounds; round++) {
                String[] expected = new String[ranks.size()];
                for (int r = 0; r < expected.length; r++) {
                    expected[r] = tag + r + "." + round;
                }
                assertArrayEquals(expected, all.get(round));
            }
        }
    }

    @Test
    void everyRankGetsEveryRanksStringByRankInEveryRound() throws Exception {
        assertGathered(call("actor_train#1 attempt 0", 4, 3, "a"), "a", 3);
    }

    @Test
    void twoCallsAtOnceEachGetOnlyTheirOwnRanksStrings() throws Exception {
        // disjoint meshes run at the same time; so do the calls of overlapping meshes one after the
        // other with the same call name: what keeps them apart is the call id
        List<Future<List<String[]>>> left = call("ref_inf#7 attempt 0", 2, 2, "left");
        List<Future<List<String[]>>> right = call("ref_inf#8 attempt 0", 3, 2, "right");
        assertGathered(left, "left", 2);
        assertGathered(right, "right", 2);
    }

    @Test
    void aRankThatNeverArrivesFailsTheOthersWithTheMissingRanksWithinTheTimeout() throws Exception {
        List<Future<String[]>> arrived = new ArrayList<>();
        for (int rank : new int[]{0, 2}) {
            arrived.add(ranks.submit(() -> client("critic_train#3 attempt 0", rank, 3).allGather("x")));
        }
        for (Future<String[]> f : arrived) {
            ExecutionException e = assertThrows(ExecutionException.class, f::get);
            assertInstanceOf(IllegalStateException.class, e.getCause());
            String message = e.getCause().getMessage();
            assertTrue(message.contains("critic_train#3 attempt 0"), message);
            assertTrue(message.contains("ranks [1] of 3 did not reach"), message);
            assertTrue(message.contains("ranks [0, 2] did"), message);
        }
        // the missing rank, when it comes at last, gets the same answer at once
        IllegalStateException late = assertThrows(IllegalStateException.class,
                () -> client("critic_train#3 attempt 0", 1, 3).allGather("x"));
        assertTrue(late.getMessage().contains("ranks [1] of 3 did not reach"), late.getMessage());
    }

    @Test
    void aRankWithAnotherRunsSecretIsRefused() {
        RendezvousAddress other = new RendezvousAddress("127.0.0.1", server.address().port(), RunSecret.generate());
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> new RendezvousClient(other, "c#1 attempt 0", 0, 1, TIMEOUT_MS, () -> false).allGather("x"));
        assertTrue(e.getMessage().contains("do not share the run's secret"), e.getMessage());
    }

    @Test
    void aStrangerIsClosedBeforeItsRequestIsReadAndTheCallGoesOn() throws Exception {
        // the old opening (the request itself, a token in the clear) with a string that claims 2 GiB
        try (Socket s = new Socket("127.0.0.1", server.address().port())) {
            s.setSoTimeout((int) TIMEOUT_MS * 5);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(0x52445631);
            out.writeInt(0x7fffffff);
            out.flush();
            assertEquals(-1, s.getInputStream().read(), "closed without an answer");
        }
        assertGathered(call("ref#1 attempt 0", 2, 2, "r"), "r", 2);
    }

    @Test
    void aKilledRankStopsWaiting() {
        AtomicBoolean killed = new AtomicBoolean();
        RendezvousClient c = new RendezvousClient(server.address(), "gen#2 attempt 0", 0, 2, 600_000, killed::get);
        killed.set(true);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.allGather("x"));
        assertTrue(e.getMessage().contains("killed"), e.getMessage());
    }

    @Test
    void ranksStillWaitingWhenTheRunEndsGetAnError() throws Exception {
        Future<String[]> waiting = ranks.submit(() -> client("late#1 attempt 0", 0, 2).allGather("x"));
        while (!waitingOnTheServer(waiting)) {
            Thread.sleep(20);
        }
        server.close();
        ExecutionException e = assertThrows(ExecutionException.class, waiting::get);
        assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
    }

    /** Whether the rank is blocked on its answer (it has not failed to connect or been answered). */
    private static boolean waitingOnTheServer(Future<?> f) throws InterruptedException {
        Thread.sleep(200);
        return !f.isDone();
    }

    @Test
    void aRankThatDisagreesOnTheWorldSizeIsRefused() throws Exception {
        Future<String[]> first = ranks.submit(() -> client("w#1 attempt 0", 0, 2).allGather("x"));
        Thread.sleep(100);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> client("w#1 attempt 0", 1, 3).allGather("y"));
        assertTrue(e.getMessage().contains("says the call has 3 ranks"), e.getMessage());
        assertThrows(ExecutionException.class, first::get); // rank 1 of 2 never came
    }
}
