package org.sparkrlhf.jobs.executor;

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
 * Messages are framed as a 4-byte length followed by the bytes.
 */
public final class TcpCommunicator implements Communicator {
    private static final byte[] CLOSED = new byte[0];

    private final int rank;
    private final int size;
    private final Socket[] sockets;
    private final DataOutputStream[] outputs;
    private final BlockingQueue<byte[]>[] inboxes;
    private final Thread[] readers;
    private final String[] readerErrors;
    private final long recvTimeoutMillis;

    /**
     * Connects rank {@code rank} of {@code size} to all others. Binds a listening socket on
     * {@code bindHost} (its advertised name, e.g. the executor's host), exchanges addresses through
     * {@code rendezvous}, then rank i connects to every rank below it and accepts every rank above.
     * A {@code recv} that waits longer than {@code recvTimeoutMillis} fails (a peer died).
     */
    public static TcpCommunicator connect(int rank, int size, String bindHost, Rendezvous rendezvous,
                                          long recvTimeoutMillis) {
        if (size < 1 || rank < 0 || rank >= size) {
            throw new IllegalArgumentException("rank " + rank + " of " + size);
        }
        try (ServerSocket server = new ServerSocket()) {
            server.bind(new InetSocketAddress(InetAddress.getByName(bindHost), 0), size);
            String mine = bindHost + ":" + server.getLocalPort();
            String[] addresses = rendezvous.allGather(mine);
            if (addresses.length != size) {
                throw new IllegalStateException("rendezvous returned " + addresses.length + " addresses for " + size + " ranks");
            }
            Socket[] sockets = new Socket[size];
            for (int peer = 0; peer < rank; peer++) {
                String address = addresses[peer];
                int colon = address.lastIndexOf(':');
                Socket s = new Socket();
                s.connect(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))),
                        (int) Math.min(Integer.MAX_VALUE, recvTimeoutMillis));
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(rank);
                out.flush();
                sockets[peer] = s;
            }
            server.setSoTimeout((int) Math.min(Integer.MAX_VALUE, recvTimeoutMillis));
            for (int accepted = 0; accepted < size - 1 - rank; accepted++) {
                Socket s;
                try {
                    s = server.accept();
                } catch (SocketTimeoutException e) {
                    throw new IllegalStateException("rank " + rank + ": a higher rank did not connect within "
                            + recvTimeoutMillis + " ms", e);
                }
                int peer = new DataInputStream(s.getInputStream()).readInt();
                if (peer <= rank || peer >= size || sockets[peer] != null) {
                    s.close();
                    throw new IllegalStateException("rank " + rank + ": unexpected connection from rank " + peer);
                }
                sockets[peer] = s;
            }
            return new TcpCommunicator(rank, size, sockets, recvTimeoutMillis);
        } catch (IOException e) {
            throw new IllegalStateException("rank " + rank + ": cannot connect the TCP mesh: " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private TcpCommunicator(int rank, int size, Socket[] sockets, long recvTimeoutMillis) throws IOException {
        this.rank = rank;
        this.size = size;
        this.sockets = sockets;
        this.recvTimeoutMillis = recvTimeoutMillis;
        this.outputs = new DataOutputStream[size];
        this.inboxes = new BlockingQueue[size];
        this.readers = new Thread[size];
        this.readerErrors = new String[size];
        for (int peer = 0; peer < size; peer++) {
            if (peer == rank) {
                continue;
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
        try {
            while (true) {
                int length = in.readInt();
                byte[] message = new byte[length];
                in.readFully(message);
                inboxes[peer].add(message);
            }
        } catch (EOFException e) {
            readerErrors[peer] = "rank " + peer + " closed the connection";
        } catch (IOException e) {
            readerErrors[peer] = "connection to rank " + peer + " failed: " + e.getMessage();
        }
        inboxes[peer].add(CLOSED);
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
        DataOutputStream out = outputs[peer];
        synchronized (out) {
            try {
                out.writeInt(message.length);
                out.write(message);
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
