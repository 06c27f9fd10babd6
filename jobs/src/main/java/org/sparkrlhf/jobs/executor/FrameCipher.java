package org.sparkrlhf.jobs.executor;

import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;

/**
 * AES-256-GCM over one direction of one TCP mesh connection: {@link #seal} on the sending side,
 * {@link #open} on the receiving side, one frame at a time, in order.
 *
 * <p>Keys: each direction has its own, drawn with HKDF-SHA256 from the run's secret, salted with
 * the connection's two handshake nonces (fresh per connection) and labelled with the direction and
 * the handshake's context and claim. So no key serves two connections or both directions of one,
 * and a frame cannot be reflected back to its sender or moved to another connection.
 *
 * <p>Nonces: the 96-bit GCM nonce is the direction's frame counter (4 zero bytes, then the 64-bit
 * count), never sent: both ends count the frames. A nonce is thus never reused under a key, and a
 * frame that is replayed, dropped, reordered or altered is opened under another nonce than it was
 * sealed with, so its tag fails and the connection ends. The length before each frame is not
 * sealed: a changed length misaligns the stream, which the next tag catches the same way.
 */
final class FrameCipher {
    /** The GCM tag appended to each sealed frame. */
    static final int TAG_BYTES = 16;
    private static final String TRANSFORMATION = "AES/GCM/NoPadding";
    private static final byte[] CONNECTOR_TO_ACCEPTOR = "spark-rlhf frame key connector->acceptor".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] ACCEPTOR_TO_CONNECTOR = "spark-rlhf frame key acceptor->connector".getBytes(StandardCharsets.US_ASCII);

    private final SecretKeySpec key;
    private final Cipher cipher;
    private final int mode;
    private long frames;

    private FrameCipher(byte[] key, int mode) {
        this.key = new SecretKeySpec(key, "AES");
        this.mode = mode;
        try {
            this.cipher = Cipher.getInstance(TRANSFORMATION);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no " + TRANSFORMATION, e);
        }
    }

    /** The cipher that seals what this side sends on the connection of {@code session}. */
    static FrameCipher sending(RunSecret secret, PeerHandshake.Session session, boolean connector) {
        return new FrameCipher(key(secret, session, connector ? CONNECTOR_TO_ACCEPTOR : ACCEPTOR_TO_CONNECTOR),
                Cipher.ENCRYPT_MODE);
    }

    /** The cipher that opens what this side receives on the connection of {@code session}. */
    static FrameCipher receiving(RunSecret secret, PeerHandshake.Session session, boolean connector) {
        return new FrameCipher(key(secret, session, connector ? ACCEPTOR_TO_CONNECTOR : CONNECTOR_TO_ACCEPTOR),
                Cipher.DECRYPT_MODE);
    }

    private static byte[] key(RunSecret secret, PeerHandshake.Session session, byte[] direction) {
        byte[] salt = ByteBuffer.allocate(session.connectorNonce().length + session.acceptorNonce().length)
                .put(session.connectorNonce()).put(session.acceptorNonce()).array();
        byte[] context = session.context().getBytes(StandardCharsets.UTF_8);
        byte[] info = ByteBuffer.allocate(direction.length + 4 + context.length + 4)
                .put(direction).putInt(context.length).put(context).putInt(session.claim()).array();
        return secret.derive(salt, info, 32);
    }

    /** The next frame to send, sealed: {@code plain.length + TAG_BYTES} bytes. */
    byte[] seal(byte[] plain) {
        check(Cipher.ENCRYPT_MODE);
        try {
            cipher.init(Cipher.ENCRYPT_MODE, key, nextNonce());
            return cipher.doFinal(plain);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot seal a frame of " + plain.length + " bytes: " + e.getMessage(), e);
        }
    }

    /**
     * The next received frame, opened; AEADBadTagException when it is not the frame the peer sealed
     * next under this connection's key (altered, replayed, reordered, or from another connection).
     */
    byte[] open(byte[] sealed) throws AEADBadTagException {
        check(Cipher.DECRYPT_MODE);
        if (sealed.length < TAG_BYTES) {
            throw new AEADBadTagException("a frame of " + sealed.length + " bytes is shorter than its tag");
        }
        try {
            cipher.init(Cipher.DECRYPT_MODE, key, nextNonce());
            return cipher.doFinal(sealed);
        } catch (AEADBadTagException e) {
            throw e;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot open a frame of " + sealed.length + " bytes: " + e.getMessage(), e);
        }
    }

    /** How many frames this side has sealed or opened. */
    long frames() {
        return frames;
    }

    private void check(int wanted) {
        if (mode != wanted) {
            throw new IllegalStateException("this frame cipher " + (mode == Cipher.ENCRYPT_MODE ? "seals" : "opens"));
        }
    }

    private GCMParameterSpec nextNonce() {
        if (frames == Long.MAX_VALUE) {
            throw new IllegalStateException("the connection's frame counter is spent; connect anew");
        }
        byte[] nonce = ByteBuffer.allocate(12).putInt(0).putLong(frames++).array();
        return new GCMParameterSpec(TAG_BYTES * 8, nonce);
    }
}
