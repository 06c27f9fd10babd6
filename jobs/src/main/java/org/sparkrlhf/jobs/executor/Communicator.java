package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Point-to-point messages between the ranks of one model function call, and the collectives that
 * tensor, pipeline and data parallel layouts need on CPU executors, built on them.
 *
 * <p>Every collective here is deterministic: reductions add the ranks' buffers in rank order
 * 0, 1, ..., n-1 on every rank, so all ranks end with bit-identical results (data-parallel replicas
 * stay in sync) and a run repeats exactly. The price is that an all-reduce moves n-1 copies of the
 * buffer to each rank instead of a ring's 2(n-1)/n; meshes of CPU executors are small.
 *
 * <p>A communicator is the engine's {@link Collective}: the tensor- and pipeline-parallel groups
 * of a sharded model are subgroups of the call's communicator ({@link #subgroup}).
 *
 * <p>The tensor collectives (gradient all-reduce, broadcast, the reallocation's exchange) come from
 * {@link Collective}: staged through host memory in chunks of at most {@link #chunkBytes} (a
 * transport's {@link CommSettings#chunkBytes()}). On GPU ranks, {@link NcclTransport} runs them and
 * the float collectives over NCCL instead, on the CUDA backend's tensors in place (same results on
 * every rank, but not added in rank order), and keeps these messages.
 */
public interface Communicator extends Collective, AutoCloseable {
    @Override
    int rank();

    @Override
    int size();

    /** Sends one message to {@code peer}; returns once it is handed to the transport (never waits for the peer). */
    void send(int peer, byte[] message);

    /** The next message from {@code peer}, in the order it was sent. */
    byte[] recv(int peer);

    @Override
    void close();

    @Override
    default void sendFloats(int peer, float[] values, int offset, int length) {
        send(peer, toBytes(values, offset, length));
    }

    /** Receives exactly {@code length} floats from {@code peer} into {@code into[offset..]}. */
    @Override
    default void recvFloats(int peer, float[] into, int offset, int length) {
        byte[] message = recv(peer);
        if (message.length != length * 4) {
            throw new IllegalStateException("rank " + rank() + ": expected " + length + " floats from rank " + peer
                    + ", got " + message.length / 4);
        }
        ByteBuffer.wrap(message).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(into, offset, length);
    }

    /** Every rank's message, indexed by rank (this rank's own included). */
    default byte[][] allGather(byte[] mine) {
        int n = size();
        byte[][] all = new byte[n][];
        for (int peer = 0; peer < n; peer++) {
            if (peer != rank()) {
                send(peer, mine);
            }
        }
        for (int peer = 0; peer < n; peer++) {
            all[peer] = peer == rank() ? mine : recv(peer);
        }
        return all;
    }

    /** Replaces {@code buffer} by the element-wise sum over all ranks, added in rank order. */
    @Override
    default void allReduceSum(float[] buffer) {
        byte[][] all = allGather(toBytes(buffer, 0, buffer.length));
        float[] sum = new float[buffer.length];
        float[] part = new float[buffer.length];
        for (int r = 0; r < all.length; r++) {
            if (all[r].length != buffer.length * 4) {
                throw new IllegalStateException("all-reduce: rank " + r + " sent " + all[r].length / 4
                        + " floats, rank " + rank() + " has " + buffer.length);
            }
            ByteBuffer.wrap(all[r]).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(part);
            for (int i = 0; i < sum.length; i++) {
                sum[i] += part[i];
            }
        }
        System.arraycopy(sum, 0, buffer, 0, sum.length);
    }

    /** Copies {@code root}'s buffer into every rank's {@code buffer}. */
    @Override
    default void broadcast(float[] buffer, int root) {
        if (rank() == root) {
            byte[] message = toBytes(buffer, 0, buffer.length);
            for (int peer = 0; peer < size(); peer++) {
                if (peer != root) {
                    send(peer, message);
                }
            }
        } else {
            recvFloats(root, buffer, 0, buffer.length);
        }
    }

    /**
     * {@link #exchangeMessages} of float arrays: sends {@code sends.get(p)} to every peer p of
     * {@code sends}, and fills {@code receives.get(p)} (sized to the expected message) from every
     * peer p of {@code receives}, in chunks.
     */
    default void exchange(Map<Integer, float[]> sends, Map<Integer, float[]> receives) {
        Map<Integer, FloatMessage> out = new LinkedHashMap<>();
        sends.forEach((peer, values) -> out.put(peer, FloatMessage.of(values)));
        Map<Integer, FloatMessage> in = new LinkedHashMap<>();
        receives.forEach((peer, values) -> in.put(peer, FloatMessage.of(values)));
        exchangeMessages(out, in);
    }

    /** Returns once every rank has called it. */
    default void barrier() {
        allGather(new byte[0]);
    }

    /**
     * The communicator of a subgroup (a tensor-parallel or data-parallel group), reusing this one's
     * connections. Rank i of the subgroup is {@code globalRanks[i]}; this rank must be one of them.
     * Two groups that share a pair of ranks must not be used at the same time (their messages would
     * interleave on the pair's one ordered stream); the groups of one dp x tp x pp grid never share
     * a pair.
     */
    default Communicator subgroup(int... globalRanks) {
        return new SubgroupCommunicator(this, globalRanks);
    }

    static byte[] toBytes(float[] values, int offset, int length) {
        ByteBuffer bytes = ByteBuffer.allocate(length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values, offset, length);
        return bytes.array();
    }
}
