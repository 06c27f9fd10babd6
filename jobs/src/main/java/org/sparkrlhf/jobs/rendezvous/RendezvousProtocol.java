package org.sparkrlhf.jobs.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * The rendezvous' wire format, one request and one reply per connection, after the connection's
 * {@link org.sparkrlhf.jobs.executor.PeerHandshake} (context {@value #HANDSHAKE_CONTEXT}).
 * <pre>
 * request: int MAGIC, str callId, int round, int rank, int world, str payload
 * reply:   byte OK,    int n, n x str   (every rank's payload, by rank)
 *        | byte ERROR, str message
 * </pre>
 * where {@code str} is an int byte length and the UTF-8 bytes.
 */
final class RendezvousProtocol {
    static final int MAGIC = 0x52445632; // "RDV2"
    static final String HANDSHAKE_CONTEXT = "rendezvous";
    static final byte OK = 0;
    static final byte ERROR = 1;
    /** Bounds what one request may make the driver allocate (addresses and NCCL ids are far smaller). */
    static final int MAX_STRING_BYTES = 1 << 20;
    /** Bounds the call id. */
    static final int MAX_NAME_BYTES = 1 << 12;
    static final int MAX_WORLD = 1 << 16;

    /** One rank's arrival at one round of a call. */
    record Request(String callId, int round, int rank, int world, String payload) {
    }

    private RendezvousProtocol() {
    }

    static void writeRequest(DataOutputStream out, Request r) throws IOException {
        out.writeInt(MAGIC);
        writeString(out, r.callId());
        out.writeInt(r.round());
        out.writeInt(r.rank());
        out.writeInt(r.world());
        writeString(out, r.payload());
        out.flush();
    }

    static Request readRequest(DataInputStream in) throws IOException {
        if (in.readInt() != MAGIC) {
            throw new IOException("not a rendezvous request");
        }
        String callId = readString(in, MAX_NAME_BYTES);
        return new Request(callId, in.readInt(), in.readInt(), in.readInt(), readString(in, MAX_STRING_BYTES));
    }

    static void writeOk(DataOutputStream out, String[] payloads) throws IOException {
        out.writeByte(OK);
        out.writeInt(payloads.length);
        for (String p : payloads) {
            writeString(out, p);
        }
        out.flush();
    }

    static void writeError(DataOutputStream out, String message) throws IOException {
        out.writeByte(ERROR);
        writeString(out, message);
        out.flush();
    }

    /** The payloads of a reply, or an IllegalStateException with the server's message. */
    static String[] readReply(DataInputStream in) throws IOException {
        byte status = in.readByte();
        if (status == ERROR) {
            throw new IllegalStateException(readString(in, MAX_STRING_BYTES));
        }
        if (status != OK) {
            throw new IOException("not a rendezvous reply");
        }
        int n = in.readInt();
        if (n < 0 || n > MAX_WORLD) {
            throw new IOException("a reply of " + n + " payloads");
        }
        String[] payloads = new String[n];
        for (int i = 0; i < n; i++) {
            payloads[i] = readString(in, MAX_STRING_BYTES);
        }
        return payloads;
    }

    private static void writeString(DataOutputStream out, String s) throws IOException {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > MAX_STRING_BYTES) {
            throw new IllegalArgumentException("a rendezvous string of " + bytes.length + " bytes (at most "
                    + MAX_STRING_BYTES + ")");
        }
        out.writeInt(bytes.length);
        out.write(bytes);
    }

    private static String readString(DataInputStream in, int max) throws IOException {
        int length = in.readInt();
        if (length < 0 || length > max) {
            throw new IOException("a string of " + length + " bytes");
        }
        byte[] bytes = new byte[length];
        in.readFully(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
