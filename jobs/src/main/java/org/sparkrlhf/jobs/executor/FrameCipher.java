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
 * <p>Pieces: a frame is sealed as consecutive pieces of at most {@value #PIECE_BYTES} bytes, each
 * followed by its tag, each with the frame's length as associated data. Why not one GCM message per
 * frame: the JDK opens a GCM message only whole (it buffers all of it before the tag is checked),
 * and its AES and GHASH intrinsics only replace methods once they are compiled, which takes
 * thousands of calls: a few large messages run interpreted, at tens of MiB/s (measured on JDK 17),
 * where 64 KiB pieces reach the intrinsics after some tens of MiB and then run at GiB/s.
 *
 * <p>Nonces: the 96-bit GCM nonce is the direction's piece counter (4 zero bytes, then the 64-bit
 * count), never sent: both ends count. A nonce is thus never reused under a key, and a frame or
 * piece that is replayed, dropped, reordered or altered is opened under another nonce than it was
 * sealed with, so its tag fails and the connection ends. The length before each frame is not
 * encrypted but is in every piece's associated data: a frame cut or joined on the way fails too.
 */
final class FrameCipher {
    /** The GCM tag after each sealed piece. */
    static final int TAG_BYTES = 16;
    /** The plaintext bytes of each sealed piece (the last piece of a frame may be shorter, or empty). */
    static final int PIECE_BYTES = 1 << 16;
    /** The most a frame of up to Integer.MAX_VALUE bytes grows by when sealed. */
    static final int MAX_OVERHEAD = TAG_BYTES * (Integer.MAX_VALUE / PIECE_BYTES + 1);
    private static final String TRANSFORMATION = "AES/GCM/NoPadding";
    private static final byte[] CONNECTOR_TO_ACCEPTOR = "spark-rlhf frame key connector->acceptor".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] ACCEPTOR_TO_CONNECTOR = "spark-rlhf frame key acceptor->connector".getBytes(StandardCharsets.US_ASCII);

    private final SecretKeySpec key;
    private final Cipher cipher;
    private final int mode;
    private long frames;
    private long pieces;

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

    /** How long a frame of {@code plainBytes} is once sealed: one tag per piece, at least one piece. */
    static long sealedLength(long plainBytes) {
        long pieceCount = Math.max(1, (plainBytes + PIECE_BYTES - 1) / PIECE_BYTES);
        return plainBytes + pieceCount * TAG_BYTES;
    }

    /** The next frame to send, sealed: {@link #sealedLength} bytes. */
    byte[] seal(byte[] plain) {
        check(Cipher.ENCRYPT_MODE);
        byte[] sealed = new byte[Math.toIntExact(sealedLength(plain.length))];
        byte[] length = frameLength(plain.length);
        frames++;
        try {
            int in = 0;
            int out = 0;
            do {
                int n = Math.min(PIECE_BYTES, plain.length - in);
                cipher.init(Cipher.ENCRYPT_MODE, key, nextNonce());
                cipher.updateAAD(length);
                out += cipher.doFinal(plain, in, n, sealed, out);
                in += n;
            } while (in < plain.length);
            return sealed;
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
        frames++;
        // the plaintext length that seals to this many bytes: full pieces, then the rest less its tag
        long fullPieces = sealed.length / (PIECE_BYTES + TAG_BYTES);
        long rest = sealed.length % (PIECE_BYTES + TAG_BYTES);
        long plainBytes = fullPieces * PIECE_BYTES + Math.max(0, rest - TAG_BYTES);
        if (sealed.length < TAG_BYTES || (rest > 0 && rest < TAG_BYTES) || sealedLength(plainBytes) != sealed.length) {
            throw new AEADBadTagException("a sealed frame cannot be " + sealed.length + " bytes long");
        }
        byte[] plain = new byte[(int) plainBytes];
        byte[] length = frameLength(plain.length);
        try {
            int in = 0;
            int out = 0;
            do {
                int n = Math.min(PIECE_BYTES + TAG_BYTES, sealed.length - in);
                cipher.init(Cipher.DECRYPT_MODE, key, nextNonce());
                cipher.updateAAD(length);
                out += cipher.doFinal(sealed, in, n, plain, out);
                in += n;
            } while (in < sealed.length);
            return plain;
        } catch (AEADBadTagException e) {
            throw e;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot open a frame of " + sealed.length + " bytes: " + e.getMessage(), e);
        }
    }

    private static byte[] frameLength(int plainBytes) {
        return ByteBuffer.allocate(4).putInt(plainBytes).array();
    }

    /** How many frames this side has sealed or opened (the one that failed included). */
    long frames() {
        return frames;
    }

    private void check(int wanted) {
        if (mode != wanted) {
            throw new IllegalStateException("this frame cipher " + (mode == Cipher.ENCRYPT_MODE ? "seals" : "opens"));
        }
    }

    private GCMParameterSpec nextNonce() {
        if (pieces == Long.MAX_VALUE) {
            throw new IllegalStateException("the connection's nonce counter is spent; connect anew");
        }
        byte[] nonce = ByteBuffer.allocate(12).putInt(0).putLong(pieces++).array();
        return new GCMParameterSpec(TAG_BYTES * 8, nonce);
    }
}
