package org.sparkrlhf.jobs.rendezvous;

import org.sparkrlhf.jobs.executor.PeerHandshake;
import org.sparkrlhf.jobs.executor.Rendezvous;
import org.sparkrlhf.jobs.executor.RunSecret;
import org.sparkrlhf.jobs.rendezvous.RendezvousProtocol.Request;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.function.BooleanSupplier;

/**
 * One rank's side of the driver's rendezvous ({@link RendezvousServer}) for one call: each
 * {@link #allGather} is the next round, one connection to the driver that carries this rank's
 * string there and every rank's back. All ranks of the call must call it the same number of times.
 *
 * <p>The wait polls every {@value #POLL_MILLIS} ms whether the task was killed (Spark kills the
 * other tasks of a failed barrier stage without interrupting them), so a killed rank stops waiting
 * at once; the reply itself wakes the rank as soon as it arrives. Should the driver never answer,
 * the rank gives up a grace period after the rendezvous' own deadline.
 */
public final class RendezvousClient implements Rendezvous {
    static final int POLL_MILLIS = 100;
    /** The driver answers a round that cannot fill up by its deadline; this is the rank's own bound past that. */
    private static final long GRACE_MILLIS = 10_000;

    private final RendezvousAddress server;
    private final String callId;
    private final int rank;
    private final int world;
    private final long timeoutMillis;
    private final BooleanSupplier killed;
    private int round;

    /**
     * @param callId        unique within the run for this call's attempt, the same on all its ranks
     * @param timeoutMillis the rendezvous' deadline (spark.rlhf.comm.timeoutMs)
     * @param killed        whether the rank's task was killed (checked while waiting)
     */
    public RendezvousClient(RendezvousAddress server, String callId, int rank, int world, long timeoutMillis,
                            BooleanSupplier killed) {
        this.server = server;
        this.callId = callId;
        this.rank = rank;
        this.world = world;
        this.timeoutMillis = timeoutMillis;
        this.killed = killed;
    }

    @Override
    public RunSecret secret() {
        return server.secret();
    }

    @Override
    public String[] allGather(String mine) {
        int thisRound = round++;
        long giveUp = System.currentTimeMillis() + timeoutMillis + GRACE_MILLIS;
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(server.host(), server.port()), (int) Math.min(timeoutMillis, 30_000));
            s.setTcpNoDelay(true);
            try {
                PeerHandshake.connect(s, server.secret(), RendezvousProtocol.HANDSHAKE_CONTEXT, rank,
                        (int) Math.min(timeoutMillis, 30_000));
            } catch (PeerHandshake.RefusedException e) {
                throw new IllegalStateException("call " + callId + " rank " + rank + ": the driver's rendezvous at "
                        + server + " and this rank do not share the run's secret (a task of another run?): "
                        + e.getMessage(), e);
            }
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            RendezvousProtocol.writeRequest(out, new Request(callId, thisRound, rank, world, mine));
            BufferedInputStream in = new BufferedInputStream(s.getInputStream());
            awaitFirstByte(s, in, thisRound, giveUp);
            s.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeoutMillis + GRACE_MILLIS));
            String[] all = RendezvousProtocol.readReply(new DataInputStream(in));
            if (all.length != world) {
                throw new IllegalStateException("call " + callId + ": the rendezvous returned " + all.length
                        + " strings for " + world + " ranks");
            }
            return all;
        } catch (IOException e) {
            throw new IllegalStateException("call " + callId + " rank " + rank + ": the driver's rendezvous at " + server
                    + " failed (round " + thisRound + "): " + e.getMessage(), e);
        }
    }

    /** Waits for the reply's first byte without consuming it, checking every poll whether the task was killed. */
    private void awaitFirstByte(Socket s, BufferedInputStream in, int thisRound, long giveUp) throws IOException {
        s.setSoTimeout(POLL_MILLIS);
        while (true) {
            in.mark(1);
            try {
                if (in.read() < 0) {
                    throw new IOException("the driver closed the connection without an answer");
                }
                in.reset();
                return;
            } catch (SocketTimeoutException e) {
                if (killed.getAsBoolean() || Thread.currentThread().isInterrupted()) {
                    throw new IllegalStateException("call " + callId + " rank " + rank
                            + ": the task was killed while waiting at the rendezvous (round " + thisRound + ")");
                }
                if (System.currentTimeMillis() > giveUp) {
                    throw new IllegalStateException("call " + callId + " rank " + rank + ": no answer from the driver's "
                            + "rendezvous at " + server + " within " + (timeoutMillis + GRACE_MILLIS) + " ms (round "
                            + thisRound + ")");
                }
            }
        }
    }
}
