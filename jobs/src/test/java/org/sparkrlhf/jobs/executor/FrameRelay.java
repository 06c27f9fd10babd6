package org.sparkrlhf.jobs.executor;

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
import java.util.List;
import java.util.function.BiFunction;

/**
 * A man in the middle of one mesh connection: rank 1 connects to it as to rank 0, it connects to
 * rank 0 and passes the handshake through untouched, then reads rank 1's length-prefixed frames and
 * writes to rank 0 whatever {@code tamper} makes of each (by index: the frame, changed, or repeated).
 * It records every byte it sees both ways after the handshake.
 */
final class FrameRelay {
    private final ServerSocket server;
    private final BiFunction<Integer, byte[], List<byte[]>> tamper;
    private final ByteArrayOutputStream seen = new ByteArrayOutputStream();

    private FrameRelay(ServerSocket server, BiFunction<Integer, byte[], List<byte[]>> tamper) {
        this.server = server;
        this.tamper = tamper;
    }

    /** A relay to {@code target} ("host:port") that changes rank 1's frames with {@code tamper}. */
    static FrameRelay to(String target, BiFunction<Integer, byte[], List<byte[]>> tamper) {
        try {
            FrameRelay relay = new FrameRelay(new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1")), tamper);
            Thread t = new Thread(() -> relay.serve(target), "frame-relay");
            t.setDaemon(true);
            t.start();
            return relay;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A relay that passes every frame unchanged. */
    static FrameRelay passing(String target) {
        return to(target, (index, frame) -> List.of(frame));
    }

    String address() {
        return "127.0.0.1:" + server.getLocalPort();
    }

    /** Every byte that went through after rank 1's handshake, both ways. */
    synchronized byte[] seen() {
        return seen.toByteArray();
    }

    private void serve(String target) {
        int colon = target.lastIndexOf(':');
        try (ServerSocket ss = server; Socket client = ss.accept(); Socket rank0 = new Socket()) {
            rank0.connect(new InetSocketAddress(target.substring(0, colon), Integer.parseInt(target.substring(colon + 1))));
            Thread back = new Thread(() -> copyBack(rank0, client), "frame-relay-back");
            back.setDaemon(true);
            back.start();
            DataInputStream in = new DataInputStream(client.getInputStream());
            DataOutputStream out = new DataOutputStream(rank0.getOutputStream());
            // the handshake in its two steps: the hello, then (after rank 0's challenge) the answer
            for (int step : new int[]{8 + PeerHandshake.NONCE_BYTES, PeerHandshake.MAC_BYTES}) {
                byte[] handshake = new byte[step];
                in.readFully(handshake);
                out.write(handshake);
                out.flush();
            }
            for (int index = 0; ; index++) {
                int length = in.readInt();
                byte[] frame = new byte[length];
                in.readFully(frame);
                record(frame, frame.length);
                for (byte[] passed : tamper.apply(index, frame)) {
                    out.writeInt(passed.length);
                    out.write(passed);
                }
                out.flush();
            }
        } catch (IOException e) {
            // a side closed
        }
    }

    /** Rank 0 to rank 1, unchanged (its handshake bytes are recorded too: random, no tensor in them). */
    private void copyBack(Socket from, Socket to) {
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) > 0; ) {
                record(buffer, n);
                out.write(buffer, 0, n);
                out.flush();
            }
            to.shutdownOutput();
        } catch (IOException e) {
            // a side closed
        }
    }

    private synchronized void record(byte[] bytes, int n) {
        seen.write(bytes, 0, n);
    }
}
