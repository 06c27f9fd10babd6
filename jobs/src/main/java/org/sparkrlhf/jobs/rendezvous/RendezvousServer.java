package org.sparkrlhf.jobs.rendezvous;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.sparkrlhf.jobs.executor.PeerHandshake;
import org.sparkrlhf.jobs.executor.RunSecret;
import org.sparkrlhf.jobs.rendezvous.RendezvousProtocol.Request;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The driver's rendezvous: a small TCP service through which the ranks of a call find each other,
 * in place of Spark's barrier RPC ({@code BarrierTaskContext.allGather}, whose task side polls for
 * its reply once a second, so that every call paid about a second before any work). As
 * XGBoost4J-Spark's tracker and PyTorch's TCPStore for TorchDistributor: the driver starts it,
 * its address and the run's secret reach the tasks in their closure ({@link RendezvousAddress}), and
 * each rank of a call proves the secret ({@link PeerHandshake}), sends (call id, round, rank, world size, its string) and gets back every
 * rank's string once all have arrived ({@link RendezvousClient}).
 *
 * <p>A round that does not fill up within {@code timeoutMillis} of its first arrival fails on every
 * waiting rank with a message naming the call, the round and the missing ranks; ranks that arrive
 * later get the same message at once. A connection that does not prove the run's secret is closed
 * before its request is read, and logged.
 *
 * <p>One thread per waiting rank (blocking sockets): a call's ranks wait here only for the moment
 * the slowest one takes to arrive.
 */
public final class RendezvousServer implements AutoCloseable {
    /** How long a connection may take to send its request. */
    private static final int REQUEST_READ_MILLIS = 30_000;
    /** Failed rounds remembered, so that their late ranks fail at once rather than waiting again. */
    private static final int FAILED_KEPT = 1024;
    private static final Logger LOG = LoggerFactory.getLogger(RendezvousServer.class);

    private final ServerSocket socket;
    private final RendezvousAddress address;
    private final RunSecret secret;
    private final long timeoutMillis;
    private final ExecutorService handlers;
    private final Thread acceptor;
    private final Map<RoundKey, Round> open = new HashMap<>();
    private final Map<RoundKey, String> failed = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<RoundKey, String> eldest) {
            return size() > FAILED_KEPT;
        }
    };
    private boolean closed;

    private record RoundKey(String callId, int round) {
    }

    /** One round of one call: who has arrived with what, until all have been answered. */
    private static final class Round {
        final int world;
        final long deadline;
        final String[] payloads;
        int arrived;
        int answered;
        String failure;

        Round(int world, long deadline) {
            this.world = world;
            this.deadline = deadline;
            this.payloads = new String[world];
        }
    }

    private RendezvousServer(ServerSocket socket, String advertisedHost, long timeoutMillis, RunSecret secret) {
        this.socket = socket;
        this.timeoutMillis = timeoutMillis;
        this.secret = secret;
        this.address = new RendezvousAddress(advertisedHost, socket.getLocalPort(), secret);
        this.handlers = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "spark-rlhf-rendezvous-rank");
            t.setDaemon(true);
            return t;
        });
        this.acceptor = new Thread(this::acceptLoop, "spark-rlhf-rendezvous");
        this.acceptor.setDaemon(true);
    }

    /**
     * Listens on {@code bindHost}:{@code port} (0: any free port) and advertises
     * {@code advertisedHost} with the bound port; rounds fail {@code timeoutMillis} after their
     * first rank arrived when some rank is still missing. Only ranks that hold {@code secret} (the
     * run's, made on the driver) are answered.
     */
    public static RendezvousServer start(String bindHost, String advertisedHost, int port, long timeoutMillis,
                                         RunSecret secret) {
        if (timeoutMillis <= 0) {
            throw new IllegalArgumentException("rendezvous timeout " + timeoutMillis + " ms");
        }
        try {
            ServerSocket socket = new ServerSocket();
            socket.setReuseAddress(true);
            socket.bind(new InetSocketAddress(InetAddress.getByName(bindHost), port), 1024);
            RendezvousServer server = new RendezvousServer(socket, advertisedHost, timeoutMillis, secret);
            server.acceptor.start();
            return server;
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the driver's rendezvous on " + bindHost + ":" + port + ": "
                    + e.getMessage(), e);
        }
    }

    /** Where tasks reach it, with the secret they must prove. */
    public RendezvousAddress address() {
        return address;
    }

    private void acceptLoop() {
        while (!socket.isClosed()) {
            try {
                Socket s = socket.accept();
                handlers.execute(() -> handle(s));
            } catch (IOException e) {
                // closed: the loop ends
            } catch (RuntimeException e) {
                // the handler pool was shut down (closing)
            }
        }
    }

    private void handle(Socket s) {
        try (s) {
            s.setTcpNoDelay(true);
            s.setSoTimeout(REQUEST_READ_MILLIS);
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            try {
                PeerHandshake.accept(s, secret, RendezvousProtocol.HANDSHAKE_CONTEXT, REQUEST_READ_MILLIS);
            } catch (PeerHandshake.RefusedException e) {
                LOG.warn("the driver's rendezvous at {} refused a connection: {}", address, e.getMessage());
                return;
            }
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            Request request;
            try {
                request = RendezvousProtocol.readRequest(in);
            } catch (IOException e) {
                return; // not a rank of this run, or one that went away
            }
            String[] all;
            try {
                all = gather(request);
            } catch (IllegalStateException | IllegalArgumentException e) {
                RendezvousProtocol.writeError(out, e.getMessage());
                return;
            }
            RendezvousProtocol.writeOk(out, all);
        } catch (IOException e) {
            // the rank went away (its task was killed); nothing to answer
        }
    }

    /** Adds the rank's string to its round and waits until the round is full, failed or closed. */
    private synchronized String[] gather(Request r) {
        if (r.world() < 1 || r.world() > RendezvousProtocol.MAX_WORLD || r.rank() < 0 || r.rank() >= r.world()) {
            throw new IllegalArgumentException("call " + r.callId() + ": rank " + r.rank() + " of " + r.world());
        }
        if (closed) {
            throw new IllegalStateException("call " + r.callId() + ": the rendezvous at " + address + " is closed (the run ended)");
        }
        RoundKey key = new RoundKey(r.callId(), r.round());
        String failure = failed.get(key);
        if (failure != null) {
            throw new IllegalStateException(failure);
        }
        Round round = open.computeIfAbsent(key, k -> new Round(r.world(), System.currentTimeMillis() + timeoutMillis));
        if (round.world != r.world()) {
            throw new IllegalArgumentException("call " + r.callId() + ", rendezvous round " + r.round() + ": rank "
                    + r.rank() + " says the call has " + r.world() + " ranks, an earlier rank said " + round.world);
        }
        if (round.payloads[r.rank()] != null) {
            throw new IllegalArgumentException("call " + r.callId() + ", rendezvous round " + r.round() + ": rank "
                    + r.rank() + " arrived twice");
        }
        round.payloads[r.rank()] = r.payload();
        round.arrived++;
        if (round.arrived == round.world) {
            notifyAll();
        }
        try {
            while (round.arrived < round.world && round.failure == null && !closed) {
                long left = round.deadline - System.currentTimeMillis();
                if (left <= 0) {
                    round.failure = missing(r.callId(), r.round(), round);
                    failed.put(key, round.failure);
                    notifyAll();
                    break;
                }
                wait(left);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            round.failure = "call " + r.callId() + ": the rendezvous at " + address + " was interrupted";
            notifyAll();
        } finally {
            round.answered++;
            if (round.answered == round.arrived && (round.arrived == round.world || round.failure != null || closed)) {
                open.remove(key);
            }
        }
        if (round.failure != null) {
            throw new IllegalStateException(round.failure);
        }
        if (round.arrived < round.world) {
            throw new IllegalStateException("call " + r.callId() + ": the rendezvous at " + address
                    + " closed (the run ended) before ranks " + absent(round) + " arrived");
        }
        return round.payloads.clone();
    }

    private String missing(String callId, int roundNumber, Round round) {
        List<Integer> present = new ArrayList<>();
        for (int i = 0; i < round.world; i++) {
            if (round.payloads[i] != null) {
                present.add(i);
            }
        }
        return "call " + callId + ": ranks " + absent(round) + " of " + round.world
                + " did not reach the driver's rendezvous (round " + roundNumber + ") within " + timeoutMillis
                + " ms of the first rank (spark.rlhf.comm.timeoutMs); ranks " + present + " did";
    }

    private static List<Integer> absent(Round round) {
        List<Integer> absent = new ArrayList<>();
        for (int i = 0; i < round.world; i++) {
            if (round.payloads[i] == null) {
                absent.add(i);
            }
        }
        return absent;
    }

    /** Stops listening; ranks still waiting get an error. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
        }
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
        handlers.shutdown();
    }
}
