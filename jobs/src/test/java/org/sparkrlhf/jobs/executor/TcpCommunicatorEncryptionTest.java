package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TCP mesh with {@link CommSettings#encrypted()}: a two-rank exchange through a man in the
 * middle ({@link FrameRelay}) completes with the exact floats while the relay sees none of the
 * tensor's bytes (and, as a control, sees them on a clear mesh); a frame with one byte flipped, a
 * frame replayed, two frames swapped and a frame cut in two at a piece boundary each fail the
 * receiving rank, naming the peer.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpCommunicatorEncryptionTest {
    private static final int TIMEOUT_MS = 20_000;
    /** 160,000 bytes: two full sealed pieces and a short one. */
    private static final int FLOATS = 40_000;

    /** The known tensor rank r sends: distinct, non-trivial values (no run of equal bytes). */
    private static float[] tensor(int rank) {
        float[] t = new float[FLOATS];
        for (int i = 0; i < FLOATS; i++) {
            t[i] = (rank + 1) * 1000.5f + i * 0.731f;
        }
        return t;
    }

    @Test
    void anEncryptedExchangeCompletesExactlyAndTheRelaySeesNoTensorBytes() throws Exception {
        FrameRelay[] relay = new FrameRelay[1];
        List<float[]> got = exchange(true, (index, frame) -> List.of(frame), relay);
        assertArrayEquals(tensor(1), got.get(0)); // rank 0 received rank 1's
        assertArrayEquals(tensor(0), got.get(1));
        float[] sum = new float[]{1f + 2f, 10f + 20f};
        assertArrayEquals(sum, got.get(2));
        assertArrayEquals(sum, got.get(3));
        byte[] seen = relay[0].seen();
        assertTrue(seen.length > 2 * FLOATS * 4, "the relay saw " + seen.length + " bytes");
        for (int rank = 0; rank < 2; rank++) {
            assertFalse(contains(seen, prefixBytes(tensor(rank))), "plaintext of rank " + rank + "'s tensor on the wire");
        }

        // the control: the same exchange in the clear shows both tensors to the relay
        FrameRelay[] clearRelay = new FrameRelay[1];
        List<float[]> clear = exchange(false, (index, frame) -> List.of(frame), clearRelay);
        assertArrayEquals(tensor(1), clear.get(0));
        for (int rank = 0; rank < 2; rank++) {
            assertTrue(contains(clearRelay[0].seen(), prefixBytes(tensor(rank))), "the control saw no tensor " + rank);
        }
    }

    @Test
    void aFrameWithOneByteFlippedFailsTheReceiveNamingThePeer() throws Exception {
        String failure = failureAtRank0((index, frame) -> {
            byte[] flipped = frame.clone();
            flipped[flipped.length / 2] ^= 1;
            return List.of(flipped);
        }, 1);
        // the peer as its socket address prints it: "/127.0.0.1:port", or "localhost/127.0.0.1:port" once
        // something resolved its name (a profiler's socket events do)
        assertTrue(failure.matches("(?s)rank 0: rank 1 \\((localhost)?/127\\.0\\.0\\.1:\\d+\\): .*"), failure);
        assertTrue(failure.contains("encrypted frame 0 failed authentication"), failure);
        assertTrue(failure.contains("the connection is closed"), failure);
    }

    @Test
    void aReplayedFrameFailsTheReceive() throws Exception {
        String failure = failureAtRank0((index, frame) -> index == 0 ? List.of(frame, frame) : List.of(frame), 2);
        assertTrue(failure.contains("rank 1 (/127.0.0.1:"), failure);
        assertTrue(failure.contains("encrypted frame 1 failed authentication"), failure);
    }

    @Test
    void swappedFramesFailTheReceive() throws Exception {
        byte[][] held = new byte[1][];
        String failure = failureAtRank0((index, frame) -> {
            if (index == 0) {
                held[0] = frame;
                return List.of();
            }
            return index == 1 ? List.of(frame, held[0]) : List.of(frame);
        }, 1);
        assertTrue(failure.contains("encrypted frame 0 failed authentication"), failure);
    }

    @Test
    void aFrameCutAtAPieceBoundaryFailsTheReceive() throws Exception {
        int firstPiece = FrameCipher.PIECE_BYTES + FrameCipher.TAG_BYTES;
        String failure = failureAtRank0((index, frame) -> index == 0
                ? List.of(Arrays.copyOf(frame, firstPiece), Arrays.copyOfRange(frame, firstPiece, frame.length))
                : List.of(frame), 1);
        assertTrue(failure.contains("encrypted frame 0 failed authentication"), failure);
    }

    /**
     * Rank 1 sends its tensor twice to rank 0 through a relay that applies {@code tamper}; rank 0
     * receives {@code good} messages, checking each is the tensor, then returns the next receive's failure.
     */
    private static String failureAtRank0(BiFunction<Integer, byte[], List<byte[]>> tamper, int good) throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        CommSettings settings = new CommSettings(TIMEOUT_MS, 1 << 20, true);
        CountDownLatch done = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<String> rank0 = pool.submit(() -> {
                try (TcpCommunicator c = TcpCommunicator.connect(0, 2, "127.0.0.1", rendezvous.forRank(0), settings)) {
                    for (int i = 0; i < good - 1; i++) {
                        float[] into = new float[FLOATS];
                        c.recvFloats(1, into, 0, FLOATS);
                        assertArrayEquals(tensor(1), into);
                    }
                    return assertThrows(IllegalStateException.class, () -> c.recv(1)).getMessage();
                } finally {
                    done.countDown();
                }
            });
            Rendezvous through = relayed(rendezvous.forRank(1), tamper, new FrameRelay[1]);
            try (TcpCommunicator c = TcpCommunicator.connect(1, 2, "127.0.0.1", through, settings)) {
                assertTrue(c.encrypted());
                try {
                    c.sendFloats(0, tensor(1), 0, FLOATS);
                    c.sendFloats(0, tensor(1), 0, FLOATS);
                } catch (IllegalStateException e) {
                    // rank 0 may fail on the first message and close before the second goes out (a broken
                    // pipe here, seen in CI): its failure is what is checked
                }
                String failure = rank0.get();
                done.await();
                return failure;
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * Both ranks send their tensor to each other, then all-reduce {r + 1, 10 (r + 1)}; rank 1 reaches
     * rank 0 through a relay. Returns rank 0's and rank 1's received tensor, then their sums.
     */
    private static List<float[]> exchange(boolean encrypted, BiFunction<Integer, byte[], List<byte[]>> tamper,
                                          FrameRelay[] relay) throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        CommSettings settings = new CommSettings(TIMEOUT_MS, 1 << 20, encrypted);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<float[][]>> futures = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                Rendezvous through = rank == 0 ? rendezvous.forRank(0) : relayed(rendezvous.forRank(1), tamper, relay);
                futures.add(pool.submit(() -> {
                    try (TcpCommunicator c = TcpCommunicator.connect(rank, 2, "127.0.0.1", through, settings)) {
                        assertEquals(encrypted, c.encrypted());
                        c.sendFloats(1 - rank, tensor(rank), 0, FLOATS);
                        float[] got = new float[FLOATS];
                        c.recvFloats(1 - rank, got, 0, FLOATS);
                        float[] sum = {rank + 1f, 10f * (rank + 1)};
                        c.allReduceSum(sum);
                        return new float[][]{got, sum};
                    }
                }));
            }
            float[][] rank0 = futures.get(0).get();
            float[][] rank1 = futures.get(1).get();
            return List.of(rank0[0], rank1[0], rank0[1], rank1[1]);
        } finally {
            pool.shutdownNow();
        }
    }

    /** Rank 1's rendezvous, whose answer points it at a relay in front of rank 0 (kept in {@code relay[0]}). */
    private static Rendezvous relayed(Rendezvous plain, BiFunction<Integer, byte[], List<byte[]>> tamper,
                                      FrameRelay[] relay) {
        return new Rendezvous() {
            @Override
            public String[] allGather(String mine) {
                String[] addresses = plain.allGather(mine);
                relay[0] = FrameRelay.to(addresses[0], tamper);
                return new String[]{relay[0].address(), addresses[1]};
            }

            @Override
            public RunSecret secret() {
                return plain.secret();
            }
        };
    }

    /** The first 16 floats of {@code t} as the mesh encodes them (little-endian). */
    private static byte[] prefixBytes(float[] t) {
        ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 16; i++) {
            b.putFloat(t[i]);
        }
        return b.array();
    }

    private static boolean contains(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return true;
        }
        return false;
    }
}
