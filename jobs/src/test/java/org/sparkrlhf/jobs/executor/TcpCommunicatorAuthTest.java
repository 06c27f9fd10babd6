package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TCP mesh refuses whoever does not prove the run's secret: a process that reaches rank 0's port
 * (the old "announce a rank" opening, a handshake without the secret, with a wrong one, a handshake
 * recorded from a real connection and replayed, a first frame that claims 2 GiB) is closed, and the
 * ranks' own exchange still completes; a frame over the receiver's limit fails the connection
 * before any allocation, naming the peer.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpCommunicatorAuthTest {
    private static final int TIMEOUT_MS = 20_000;
    private static final String RANK_0_OF_2 = "tcp-mesh rank 0 of 2";
    /** What the connector sends in a handshake: MAGIC, claim, nonce, then its answer. */
    private static final int CONNECTOR_BYTES = 8 + PeerHandshake.NONCE_BYTES + PeerHandshake.MAC_BYTES;
    /** What the acceptor sends before its verdict: MAGIC, nonce, its answer. */
    private static final int CHALLENGE_BYTES = 4 + PeerHandshake.NONCE_BYTES + PeerHandshake.MAC_BYTES;

    @Test
    void strangersAtARanksPortAreRefusedAndTheExchangeCompletes() throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        RunSecret secret = rendezvous.forRank(0).secret();

        // a real connection between the two ranks, through a relay that records what rank 1 sends
        List<Relay> relays = new ArrayList<>();
        float[][] first = exchange(rendezvous, addresses -> {
            Relay relay = Relay.to(addresses[0]);
            relays.add(relay);
            return new String[]{relay.address(), addresses[1]};
        });
        assertArrayEquals(new float[]{0f, 1f}, first[1]);
        assertArrayEquals(new float[]{1f, 2f}, first[0]);
        byte[] recorded = Arrays.copyOf(relays.get(0).fromClient(), CONNECTOR_BYTES);

        // the same mesh connected again (same secret, same ranks); before rank 1 connects, strangers try rank 0
        List<String> outcomes = new ArrayList<>();
        float[][] second = exchange(rendezvous, addresses -> {
            String rank0 = addresses[0];
            outcomes.add("legacy " + closedAfter(rank0, ByteBuffer.allocate(4).putInt(1).array(), 0));
            byte[] unsignedHello = ByteBuffer.allocate(8 + PeerHandshake.NONCE_BYTES).putInt(PeerHandshake.MAGIC)
                    .putInt(1).put(RunSecret.nonce(PeerHandshake.NONCE_BYTES)).array();
            byte[] guess = RunSecret.nonce(PeerHandshake.MAC_BYTES);
            byte[] noSecret = ByteBuffer.allocate(CONNECTOR_BYTES).put(unsignedHello).put(guess).array();
            outcomes.add("no secret " + closedAfter(rank0, noSecret, CHALLENGE_BYTES));
            outcomes.add("replay " + closedAfter(rank0, recorded, CHALLENGE_BYTES));
            outcomes.add("2 GiB frame " + closedAfter(rank0, ByteBuffer.allocate(4).putInt(0x80000000).array(), 0));
            try (Socket s = connectTo(rank0)) {
                PeerHandshake.RefusedException e = assertThrows(PeerHandshake.RefusedException.class,
                        () -> PeerHandshake.connect(s, RunSecret.generate(), RANK_0_OF_2, 1, TIMEOUT_MS));
                outcomes.add("wrong secret " + e.getMessage().contains("did not prove this run's secret"));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            return addresses;
        });
        assertEquals(List.of("legacy true", "no secret true", "replay true", "2 GiB frame true", "wrong secret true"),
                outcomes);
        assertArrayEquals(new float[]{0f, 1f}, second[1]);
        assertArrayEquals(new float[]{1f, 2f}, second[0]);
        // the recorded handshake was a real one: it opened with the magic and rank 1's claim
        assertEquals(PeerHandshake.MAGIC, ByteBuffer.wrap(recorded).getInt(0));
        assertEquals(1, ByteBuffer.wrap(recorded).getInt(4));
        assertEquals("RunSecret(hidden)", secret.toString());
    }

    @Test
    void aFrameThatClaims2GiBFailsTheConnectionNamingThePeer() throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<String> rank0 = pool.submit(() -> {
                try (TcpCommunicator c = TcpCommunicator.connect(0, 2, "127.0.0.1", rendezvous.forRank(0), TIMEOUT_MS)) {
                    return assertThrows(IllegalStateException.class, () -> c.recv(1)).getMessage();
                }
            });
            // rank 1 holds the secret but sends a length no frame can have
            Rendezvous mine = rendezvous.forRank(1);
            String[] addresses = mine.allGather("127.0.0.1:1");
            try (Socket s = connectTo(addresses[0])) {
                PeerHandshake.connect(s, mine.secret(), RANK_0_OF_2, 1, TIMEOUT_MS);
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(0x80000000);
                out.flush();
                String message = rank0.get();
                assertTrue(message.contains("rank 1 (/127.0.0.1:"), message);
                assertTrue(message.contains("a frame of 2147483648 bytes, more than the " + (1 << 30)), message);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aFrameOverAConfiguredLimitIsRefusedAndOneAtItPasses() throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<List<String>> rank0 = pool.submit(() -> {
                try (TcpCommunicator c = TcpCommunicator.connect(0, 2, "127.0.0.1", rendezvous.forRank(0), TIMEOUT_MS, 16)) {
                    List<String> got = new ArrayList<>();
                    got.add(Arrays.toString(c.recv(1)));
                    got.add(assertThrows(IllegalStateException.class, () -> c.recv(1)).getMessage());
                    return got;
                }
            });
            try (TcpCommunicator c = TcpCommunicator.connect(1, 2, "127.0.0.1", rendezvous.forRank(1), TIMEOUT_MS)) {
                byte[] sixteen = new byte[16];
                sixteen[15] = 7;
                c.send(0, sixteen);
                c.send(0, new byte[17]);
                List<String> got = rank0.get();
                assertEquals(Arrays.toString(sixteen), got.get(0));
                assertTrue(got.get(1).contains("rank 1 (/127.0.0.1:"), got.get(1));
                assertTrue(got.get(1).contains("a frame of 17 bytes, more than the 16 this rank accepts"), got.get(1));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * Connects a 2-rank mesh (rank 1's rendezvous answers passed through {@code rank1Sees}), has
     * rank r send {r, r + 1} to the other, and returns what each rank received.
     */
    private static float[][] exchange(InMemoryRendezvous rendezvous, UnaryOperator<String[]> rank1Sees) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<float[]>> futures = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                Rendezvous plain = rendezvous.forRank(rank);
                Rendezvous through = rank == 0 ? plain : new Rendezvous() {
                    @Override
                    public String[] allGather(String mine) {
                        return rank1Sees.apply(plain.allGather(mine));
                    }

                    @Override
                    public RunSecret secret() {
                        return plain.secret();
                    }
                };
                futures.add(pool.submit(() -> {
                    try (TcpCommunicator c = TcpCommunicator.connect(rank, 2, "127.0.0.1", through, TIMEOUT_MS)) {
                        c.sendFloats(1 - rank, new float[]{rank, rank + 1}, 0, 2);
                        float[] got = new float[2];
                        c.recvFloats(1 - rank, got, 0, 2);
                        return got;
                    }
                }));
            }
            return new float[][]{futures.get(0).get(), futures.get(1).get()};
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * Sends {@code bytes} to {@code address}, reads {@code expected} bytes of answer, and says whether
     * the peer then closed the connection without a further byte (no verdict: refused).
     */
    private static boolean closedAfter(String address, byte[] bytes, int expected) {
        try (Socket s = connectTo(address)) {
            s.setSoTimeout(TIMEOUT_MS);
            s.getOutputStream().write(bytes);
            s.getOutputStream().flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            in.readFully(new byte[expected]);
            try {
                return in.read() == -1;
            } catch (IOException e) {
                return e.getMessage() != null && e.getMessage().contains("reset"); // closed with our bytes unread
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Socket connectTo(String address) throws IOException {
        int colon = address.lastIndexOf(':');
        Socket s = new Socket();
        s.connect(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))),
                TIMEOUT_MS);
        return s;
    }

    /** A one-connection TCP relay to a rank that keeps a copy of what the connecting side sends. */
    private static final class Relay {
        private final ServerSocket server;
        private final ByteArrayOutputStream fromClient = new ByteArrayOutputStream();

        private Relay(ServerSocket server) {
            this.server = server;
        }

        static Relay to(String target) {
            try {
                ServerSocket server = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"));
                Relay relay = new Relay(server);
                Thread t = new Thread(() -> relay.serve(target), "relay");
                t.setDaemon(true);
                t.start();
                return relay;
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        String address() {
            return "127.0.0.1:" + server.getLocalPort();
        }

        synchronized byte[] fromClient() {
            return fromClient.toByteArray();
        }

        private void serve(String target) {
            try (ServerSocket ss = server; Socket client = ss.accept(); Socket rank = connectTo(target)) {
                Thread back = new Thread(() -> copy(rank, client, null), "relay-back");
                back.setDaemon(true);
                back.start();
                copy(client, rank, this);
                back.join();
            } catch (IOException | InterruptedException e) {
                // the mesh closed
            }
        }

        private static void copy(Socket from, Socket to, Relay recordTo) {
            try {
                InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream();
                byte[] buffer = new byte[4096];
                for (int n; (n = in.read(buffer)) > 0; ) {
                    if (recordTo != null) {
                        synchronized (recordTo) {
                            recordTo.fromClient.write(buffer, 0, n);
                        }
                    }
                    out.write(buffer, 0, n);
                    out.flush();
                }
                to.shutdownOutput();
            } catch (IOException e) {
                // one side closed
            }
        }
    }
}
