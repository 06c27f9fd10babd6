package org.sparkrlhf.jobs.executor;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.crypto.AEADBadTagException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The CPU transport between the ranks of one call: a full mesh of TCP connections, one per pair of
 * ranks, set up through a {@link Rendezvous} (the driver's, see {@code BarrierCallRunner}: an
 * all-gather of each rank's {@code host:port}, as NCCL's unique id is exchanged). Executors keep it
 * for the next call on the same devices ({@link MeshConnections}).
 *
 * <p>Why plain sockets and not a transport Spark already has: Spark's block manager is a store
 * (blocks live in executor memory or disk until removed, its remote-fetch API is internal), the
 * shuffle only moves data between stages, and RPC endpoints are driver-centred and internal. A call's
 * ranks run at the same time (the barrier stage guarantees it) and need ordered streams between
 * pairs inside one stage, which is exactly what a TCP connection is; PyTorch's gloo backend does
 * the same on CPU. No bytes go through the driver.
 *
 * <p>Each connection has a reader thread that drains incoming messages into a queue, so a send
 * never blocks on the peer (two ranks sending large buffers to each other cannot deadlock).
 * Messages are framed as a 4-byte length followed by the bytes; a length over the receiver's
 * limit fails the connection, naming the peer, before any allocation.
 *
 * <p>Every connection opens with a {@link PeerHandshake}: both ends prove the run's secret (carried
 * by the {@link Rendezvous}), so a process that reaches a rank's port without it cannot announce
 * itself as a rank and feed it bytes. With {@link CommSettings#encrypted()} (Spark's
 * {@code spark.network.crypto.enabled}) every frame after the handshake is also sealed with
 * AES-GCM under that connection's keys ({@link FrameCipher}): whoever reads the path sees no
 * tensor, and a frame altered, replayed or reordered on it fails the connection, naming the peer.
 */
public final class TcpCommunicator implements Communicator {
    /** How long an accepted connection may take to prove the run's secret (a silent stranger). */
    private static final long HANDSHAKE_MILLIS = 10_000;
    private static final Logger LOG = LoggerFactory.getLogger(TcpCommunicator.class);
    private static final byte[] CLOSED = new byte[0];

    private final int rank;
    private final int size;
    private final Socket[] sockets;
    private final DataOutputStream[] outputs;
    private final BlockingQueue<byte[]>[] inboxes;
    private final Thread[] readers;
    private final String[] readerErrors;
    private final long recvTimeoutMillis;
    private final int maxFrameBytes;
    private final int chunkBytes;
    /** Per peer, the ciphers of the connection's two directions; null when frames go in the clear. */
    private final FrameCipher[] sealers;
    private final FrameCipher[] openers;

    /**
     * Connects rank {@code rank} of {@code size} to all others. Binds a listening socket on
     * {@code bindHost} (its advertised name, e.g. the executor's host), exchanges addresses through
     * {@code rendezvous}, then rank i connects to every rank below it and accepts every rank above.
     * A {@code recv} that waits longer than {@code recvTimeoutMillis} fails (a peer died). Frames
     * up to {@link CommSettings#DEFAULT_MAX_FRAME_BYTES}, in the clear.
     */
    public static TcpCommunicator connect(int rank, int size, String bindHost, Rendezvous rendezvous,
                                          long recvTimeoutMillis) {
        return connect(rank, size, bindHost, rendezvous, CommSettings.of(recvTimeoutMillis));
    }

    /**
     * {@link #connect(int, int, String, Rendezvous, long)} with frames of at most {@code maxFrameBytes}
     * each way. Every connection opens with the {@link PeerHandshake} on the rendezvous' secret; a
     * connection to this rank's port that fails it (a stranger, another run's rank, a replay) is
     * closed and logged, and the rank keeps waiting for its real peers.
     */
    public static TcpCommunicator connect(int rank, int size, String bindHost, Rendezvous rendezvous,
                                          long recvTimeoutMillis, int maxFrameBytes) {
        return connect(rank, size, bindHost, rendezvous, new CommSettings(recvTimeoutMillis, maxFrameBytes, false));
    }

    /**
     * Connects rank {@code rank} of {@code size} as {@code settings} say: the deadline of every
     * connection and receive, the frame limit each way, and whether frames are encrypted.
     */
    public static TcpCommunicator connect(int rank, int size, String bindHost, Rendezvous rendezvous,
                                          CommSettings settings) {
        if (size < 1 || rank < 0 || rank >= size) {
            throw new IllegalArgumentException("rank " + rank + " of " + size);
        }
        long recvTimeoutMillis = settings.timeoutMillis();
        RunSecret secret = rendezvous.secret();
        Socket[] sockets = new Socket[size];
        PeerHandshake.Session[] sessions = new PeerHandshake.Session[size];
        boolean connected = false;
        try (ServerSocket server = new ServerSocket()) {
            server.bind(new InetSocketAddress(InetAddress.getByName(bindHost), 0), size);
            String mine = bindHost + ":" + server.getLocalPort();
            String[] addresses = rendezvous.allGather(mine);
            if (addresses.length != size) {
                throw new IllegalStateException("rendezvous returned " + addresses.length + " addresses for " + size + " ranks");
            }
            int handshakeMillis = (int) Math.min(HANDSHAKE_MILLIS, recvTimeoutMillis);
            for (int peer = 0; peer < rank; peer++) {
                String address = addresses[peer];
                int colon = address.lastIndexOf(':');
                Socket s = new Socket();
                sockets[peer] = s;
                s.connect(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))),
                        (int) Math.min(Integer.MAX_VALUE, recvTimeoutMillis));
                // the lower rank answers once it reaches this connection in its accept loop
                sessions[peer] = PeerHandshake.connect(s, secret, handshakeContext(peer, size), rank,
                        (int) Math.min(Integer.MAX_VALUE, recvTimeoutMillis));
            }
            long deadline = System.currentTimeMillis() + recvTimeoutMillis;
            int missing = size - 1 - rank;
            while (missing > 0) {
                long left = deadline - System.currentTimeMillis();
                Socket s;
                try {
                    if (left <= 0) {
                        throw new SocketTimeoutException();
                    }
                    server.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
                    s = server.accept();
                } catch (SocketTimeoutException e) {
                    throw new IllegalStateException("rank " + rank + ": higher ranks " + absent(sockets, rank)
                            + " did not connect within " + recvTimeoutMillis + " ms", e);
                }
                try {
                    PeerHandshake.Session session = PeerHandshake.accept(s, secret, handshakeContext(rank, size),
                            (int) Math.max(1, Math.min(handshakeMillis, left)));
                    int peer = session.claim();
                    if (peer <= rank || peer >= size || sockets[peer] != null) {
                        throw new PeerHandshake.RefusedException("a connection from " + s.getRemoteSocketAddress()
                                + " proved the secret but claims rank " + peer + ", which rank " + rank
                                + " does not wait for");
                    }
                    sockets[peer] = s;
                    sessions[peer] = session;
                    missing--;
                } catch (IOException e) {
                    LOG.warn("rank {} of {}: refused a connection: {}", rank, size, e.getMessage());
                    closeQuietly(s);
                }
            }
            TcpCommunicator communicator = new TcpCommunicator(rank, size, sockets, recvTimeoutMillis,
                    settings.maxFrameBytes(), settings.chunkBytes(), settings.encrypted() ? secret : null, sessions);
            connected = true;
            return communicator;
        } catch (IOException e) {
            throw new IllegalStateException("rank " + rank + ": cannot connect the TCP mesh: " + e.getMessage(), e);
        } finally {
            if (!connected) {
                for (Socket s : sockets) {
                    closeQuietly(s);
                }
            }
        }
    }

    /** What both ends of the connection to rank {@code acceptor} bind their proofs to. */
    private static String handshakeContext(int acceptor, int size) {
        return "tcp-mesh rank " + acceptor + " of " + size;
    }

    private static List<Integer> absent(Socket[] sockets, int rank) {
        List<Integer> absent = new ArrayList<>();
        for (int peer = rank + 1; peer < sockets.length; peer++) {
            if (sockets[peer] == null) {
                absent.add(peer);
            }
        }
        return absent;
    }

    private static void closeQuietly(Socket s) {
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing a refused or unfinished connection
            }
        }
    }

    /** {@code secret} null: frames in the clear; else sealed with keys from it and each peer's session. */
    @SuppressWarnings("unchecked")
    private TcpCommunicator(int rank, int size, Socket[] sockets, long recvTimeoutMillis, int maxFrameBytes,
                            int chunkBytes, RunSecret secret, PeerHandshake.Session[] sessions) throws IOException {
        this.rank = rank;
        this.maxFrameBytes = maxFrameBytes;
        this.chunkBytes = chunkBytes;
        this.size = size;
        this.sockets = sockets;
        this.recvTimeoutMillis = recvTimeoutMillis;
        this.outputs = new DataOutputStream[size];
        this.inboxes = new BlockingQueue[size];
        this.readers = new Thread[size];
        this.readerErrors = new String[size];
        this.sealers = secret == null ? null : new FrameCipher[size];
        this.openers = secret == null ? null : new FrameCipher[size];
        for (int peer = 0; peer < size; peer++) {
            if (peer == rank) {
                continue;
            }
            if (secret != null) {
                // this rank connected to the ranks below it and accepted those above
                boolean connector = peer < rank;
                sealers[peer] = FrameCipher.sending(secret, sessions[peer], connector);
                openers[peer] = FrameCipher.receiving(secret, sessions[peer], connector);
            }
            Socket s = sockets[peer];
            s.setTcpNoDelay(true);
            outputs[peer] = new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16));
            inboxes[peer] = new LinkedBlockingQueue<>();
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream(), 1 << 16));
            int from = peer;
            readers[peer] = new Thread(() -> readLoop(from, in), "tcp-comm-r" + rank + "-from-r" + peer);
            readers[peer].setDaemon(true);
            readers[peer].start();
        }
    }

    private void readLoop(int peer, DataInputStream in) {
        FrameCipher opener = openers == null ? null : openers[peer];
        long limit = opener == null ? maxFrameBytes : FrameCipher.sealedLength(maxFrameBytes);
        try {
            while (true) {
                int length = in.readInt();
                if (length < 0 || length > limit) {
                    readerErrors[peer] = "rank " + peer + " (" + sockets[peer].getRemoteSocketAddress() + ") sent a frame of "
                            + Integer.toUnsignedString(length) + " bytes, more than the " + maxFrameBytes
                            + " this rank accepts; the connection is closed";
                    LOG.warn("rank {}: {}", rank, readerErrors[peer]);
                    closeQuietly(sockets[peer]);
                    break;
                }
                byte[] message = new byte[length];
                in.readFully(message);
                if (opener != null) {
                    try {
                        message = opener.open(message);
                    } catch (AEADBadTagException e) {
                        readerErrors[peer] = "rank " + peer + " (" + sockets[peer].getRemoteSocketAddress() + "): encrypted "
                                + "frame " + (opener.frames() - 1) + " failed authentication (altered, replayed or "
                                + "reordered on the way, or not sealed by that rank); the connection is closed";
                        LOG.warn("rank {}: {}", rank, readerErrors[peer]);
                        closeQuietly(sockets[peer]);
                        break;
                    }
                }
                inboxes[peer].add(message);
            }
        } catch (EOFException e) {
            readerErrors[peer] = "rank " + peer + " closed the connection";
        } catch (IOException e) {
            readerErrors[peer] = "connection to rank " + peer + " failed: " + e.getMessage();
        }
        inboxes[peer].add(CLOSED);
    }

    /** Whether this mesh's frames are encrypted ({@link CommSettings#encrypted()}). */
    public boolean encrypted() {
        return sealers != null;
    }

    @Override
    public long chunkBytes() {
        return chunkBytes;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public void send(int peer, byte[] message) {
        checkPeer(peer);
        if (message.length > maxFrameBytes) {
            throw new IllegalArgumentException("rank " + rank + ": a message of " + message.length + " bytes to rank "
                    + peer + " is over the frame limit of " + maxFrameBytes + " bytes");
        }
        DataOutputStream out = outputs[peer];
        synchronized (out) {
            try {
                // sealed under the lock: the frame counter must follow the order on the wire
                byte[] frame = sealers == null ? message : sealers[peer].seal(message);
                out.writeInt(frame.length);
                out.write(frame);
                out.flush();
            } catch (IOException e) {
                throw new IllegalStateException("rank " + rank + ": send to rank " + peer + " failed: " + e.getMessage(), e);
            }
        }
    }

    @Override
    public byte[] recv(int peer) {
        checkPeer(peer);
        byte[] message;
        try {
            message = inboxes[peer].poll(recvTimeoutMillis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("rank " + rank + ": interrupted while receiving from rank " + peer, e);
        }
        if (message == null) {
            throw new IllegalStateException("rank " + rank + ": nothing from rank " + peer + " within " + recvTimeoutMillis + " ms");
        }
        if (message == CLOSED) {
            inboxes[peer].add(CLOSED);
            throw new IllegalStateException("rank " + rank + ": " + readerErrors[peer]);
        }
        return message;
    }

    private void checkPeer(int peer) {
        if (peer < 0 || peer >= size || peer == rank) {
            throw new IllegalArgumentException("rank " + rank + ": no peer " + peer + " (size " + size + ")");
        }
    }

    @Override
    public void close() {
        for (int peer = 0; peer < size; peer++) {
            if (sockets[peer] != null) {
                try {
                    sockets[peer].close();
                } catch (IOException ignored) {
                    // closing: the peer may have gone already
                }
            }
        }
    }
}
