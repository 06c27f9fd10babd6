package org.sparkrlhf.jobs.executor;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * The mutual HMAC-SHA256 challenge-response that opens every connection between the ranks of a run
 * and from a rank to the driver's rendezvous: each side proves it holds the run's {@link RunSecret}
 * without sending it.
 * <pre>
 * connector -> acceptor: int MAGIC, int claim, nonceC
 * acceptor -> connector: int MAGIC, nonceS, HMAC(secret, "acceptor"  || nonceC || nonceS || context || claim)
 * connector -> acceptor:                    HMAC(secret, "connector" || nonceS || nonceC || context || claim)
 * acceptor -> connector: byte ACCEPTED
 * </pre>
 * Nonces are {@value #NONCE_BYTES} fresh random bytes per connection, so a handshake recorded from a
 * real connection and replayed fails (its answer is over the other nonce); the role tags keep one
 * side's answer from being reflected back as the other's. The {@code context} (which rank is
 * reached, the mesh size, or "rendezvous") and the connector's {@code claim} (its rank) are in both
 * answers, so a proof made for one pair of ranks is no proof for another. Every field has a fixed
 * size: a stranger's bytes cannot make either side allocate.
 *
 * <p>What this gives: only holders of the run's secret can connect; a stranger (no secret, a wrong
 * one, a replay) is refused before any of its bytes are read as data. What it does not give by
 * itself: confidentiality or per-frame integrity against someone who can rewrite packets on the
 * path after the handshake. With {@code spark.network.crypto.enabled} the TCP mesh seals every frame
 * with keys drawn from the secret and this handshake's two nonces ({@link Session}, {@link FrameCipher}).
 */
public final class PeerHandshake {
    static final int MAGIC = 0x53524831; // "SRH1"
    static final int NONCE_BYTES = 32;
    static final int MAC_BYTES = 32;
    private static final byte ACCEPTED = 1;
    private static final byte[] ACCEPTOR_TAG = "acceptor".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] CONNECTOR_TAG = "connector".getBytes(StandardCharsets.US_ASCII);

    /** A peer that did not prove the run's secret, or refused this side's proof. */
    public static final class RefusedException extends IOException {
        private static final long serialVersionUID = 1L;

        RefusedException(String message) {
            super(message);
        }
    }

    /**
     * A completed handshake: the connector's claim, both nonces (fresh for this connection) and the
     * context both proved, from which the connection's frame keys are drawn ({@link FrameCipher}).
     */
    public record Session(int claim, byte[] connectorNonce, byte[] acceptorNonce, String context) {
    }

    private PeerHandshake() {
    }

    /**
     * The connecting side: claims {@code claim} (its rank), proves the secret and checks the
     * acceptor's proof. Throws {@link RefusedException} when the acceptor fails to prove it or
     * refuses this side; reads wait at most {@code timeoutMillis} each.
     */
    public static Session connect(Socket s, RunSecret secret, String context, int claim, int timeoutMillis)
            throws IOException {
        int before = s.getSoTimeout();
        s.setSoTimeout(timeoutMillis);
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        DataInputStream in = new DataInputStream(s.getInputStream());
        byte[] own = RunSecret.nonce(NONCE_BYTES);
        out.write(ByteBuffer.allocate(8 + NONCE_BYTES).putInt(MAGIC).putInt(claim).put(own).array());
        out.flush();
        byte[] peer = new byte[NONCE_BYTES];
        byte[] answer = new byte[MAC_BYTES];
        try {
            if (in.readInt() != MAGIC) {
                throw new RefusedException("the peer at " + s.getRemoteSocketAddress() + " is not a rank of this run");
            }
            in.readFully(peer);
            in.readFully(answer);
        } catch (EOFException e) {
            throw new RefusedException("the peer at " + s.getRemoteSocketAddress() + " closed the connection during the handshake");
        }
        if (!MessageDigest.isEqual(answer, proof(secret, ACCEPTOR_TAG, own, peer, context, claim))) {
            throw new RefusedException("the peer at " + s.getRemoteSocketAddress()
                    + " did not prove this run's secret (another run, or not a rank)");
        }
        out.write(proof(secret, CONNECTOR_TAG, peer, own, context, claim));
        out.flush();
        int verdict;
        try {
            verdict = in.read();
        } catch (SocketTimeoutException e) {
            verdict = -1;
        }
        if (verdict != ACCEPTED) {
            throw new RefusedException("the peer at " + s.getRemoteSocketAddress() + " refused this side's proof of the "
                    + "run's secret (a task of another run?)");
        }
        s.setSoTimeout(before);
        return new Session(claim, own, peer, context);
    }

    /**
     * The accepting side: returns the session (the connector's claim) once it has proved the secret. Throws
     * {@link RefusedException} (after closing nothing: the caller closes the socket) when it does
     * not; reads wait at most {@code timeoutMillis} each.
     */
    public static Session accept(Socket s, RunSecret secret, String context, int timeoutMillis) throws IOException {
        int before = s.getSoTimeout();
        s.setSoTimeout(timeoutMillis);
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        DataInputStream in = new DataInputStream(s.getInputStream());
        byte[] peer = new byte[NONCE_BYTES];
        int claim;
        try {
            if (in.readInt() != MAGIC) {
                throw new RefusedException("a connection from " + s.getRemoteSocketAddress()
                        + " did not open with the handshake (not a rank of this run)");
            }
            claim = in.readInt();
            in.readFully(peer);
        } catch (EOFException e) {
            throw new RefusedException("a connection from " + s.getRemoteSocketAddress() + " closed during the handshake");
        } catch (SocketTimeoutException e) {
            throw new RefusedException("a connection from " + s.getRemoteSocketAddress() + " sent no handshake within "
                    + timeoutMillis + " ms");
        }
        byte[] own = RunSecret.nonce(NONCE_BYTES);
        out.write(ByteBuffer.allocate(4 + NONCE_BYTES + MAC_BYTES).putInt(MAGIC).put(own)
                .put(proof(secret, ACCEPTOR_TAG, peer, own, context, claim)).array());
        out.flush();
        byte[] answer = new byte[MAC_BYTES];
        try {
            in.readFully(answer);
        } catch (EOFException e) {
            throw new RefusedException("a connection from " + s.getRemoteSocketAddress() + " closed during the handshake");
        } catch (SocketTimeoutException e) {
            throw new RefusedException("a connection from " + s.getRemoteSocketAddress() + " did not answer the "
                    + "challenge within " + timeoutMillis + " ms");
        }
        if (!MessageDigest.isEqual(answer, proof(secret, CONNECTOR_TAG, own, peer, context, claim))) {
            throw new RefusedException("a connection from " + s.getRemoteSocketAddress() + " (claiming " + claim
                    + ") did not prove this run's secret (a wrong secret or a replayed handshake)");
        }
        out.write(ACCEPTED);
        out.flush();
        s.setSoTimeout(before);
        return new Session(claim, peer, own, context);
    }

    /** HMAC(secret, tag || the peer's nonce || the own nonce || context || claim). */
    private static byte[] proof(RunSecret secret, byte[] tag, byte[] peerNonce, byte[] ownNonce, String context,
                                int claim) {
        byte[] contextBytes = context.getBytes(StandardCharsets.UTF_8);
        byte[] bound = ByteBuffer.allocate(8 + contextBytes.length).putInt(contextBytes.length).put(contextBytes)
                .putInt(claim).array();
        return secret.hmac(tag, peerNonce, ownNonce, bound);
    }
}
