package org.sparkrlhf.jobs.executor;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.io.Serializable;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;

/**
 * A run's shared secret: 32 random bytes made on the driver (one per {@code BarrierCallRunner}) and
 * handed to the tasks inside their closure, with which every connection between ranks, and from a
 * rank to the driver's rendezvous, is authenticated ({@link PeerHandshake}). It never goes on the
 * wire (only HMACs of fresh nonces do) and never into a log or a message: {@link #toString} hides it.
 *
 * <p>The closure travels as Spark ships tasks: encrypted when {@code spark.network.crypto.enabled}
 * (or {@code spark.ssl} for RPC) is on, in the clear otherwise, as every other task closure does.
 */
public final class RunSecret implements Serializable {
    private static final long serialVersionUID = 1L;
    static final int BYTES = 32;
    private static final String MAC = "HmacSHA256";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final byte[] key;

    private RunSecret(byte[] key) {
        this.key = key;
    }

    /** A new secret, from {@link SecureRandom}. */
    public static RunSecret generate() {
        byte[] key = new byte[BYTES];
        RANDOM.nextBytes(key);
        return new RunSecret(key);
    }

    /** {@code bytes} random bytes from the same source (a handshake's nonce). */
    static byte[] nonce(int bytes) {
        byte[] nonce = new byte[bytes];
        RANDOM.nextBytes(nonce);
        return nonce;
    }

    /** HMAC-SHA256 under this secret of the concatenation of {@code parts}. */
    byte[] hmac(byte[]... parts) {
        try {
            Mac mac = Mac.getInstance(MAC);
            mac.init(new SecretKeySpec(key, MAC));
            for (byte[] part : parts) {
                mac.update(part);
            }
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no " + MAC, e);
        }
    }

    /**
     * {@code bytes} (at most 32) of key material for one use, bound to {@code salt} and {@code info}:
     * HKDF (RFC 5869) with HMAC-SHA256 over this secret, so that the secret itself keys nothing but HMACs.
     */
    byte[] derive(byte[] salt, byte[] info, int bytes) {
        if (bytes > 32) {
            throw new IllegalArgumentException("one HKDF block is 32 bytes, not " + bytes);
        }
        try {
            Mac mac = Mac.getInstance(MAC);
            mac.init(new SecretKeySpec(salt, MAC));
            byte[] pseudoRandomKey = mac.doFinal(key);
            mac.init(new SecretKeySpec(pseudoRandomKey, MAC));
            mac.update(info);
            mac.update((byte) 1);
            return java.util.Arrays.copyOf(mac.doFinal(), bytes);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no " + MAC, e);
        }
    }

    @Override
    public String toString() {
        return "RunSecret(hidden)";
    }
}
