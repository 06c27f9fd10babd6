package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.List;
import java.util.Map;

/**
 * The communication one rank of a tensor- or pipeline-parallel group needs: ordered point-to-point
 * float messages and two collectives. Ranks are numbered within the group: in a tensor-parallel
 * group rank t is tensor rank t, in a pipeline group rank s is stage s.
 *
 * <p>Implementations must be deterministic (an all-reduce adds the ranks' buffers in rank order on
 * every rank, so every rank ends with the same bits), and {@link #sendFloats} must not wait for the
 * peer to receive (host messages may be sent to a peer that sends to this rank first). The model's
 * own point-to-point traffic moves tensors ({@link #sendTensor}), whose sends may wait.
 *
 * <p>The tensor collectives ({@link #allReduceSum(Backend, List)}, {@link #broadcast(Backend, Tensor, int)},
 * {@link #allGather(Backend, Tensor, Tensor)}, {@link #exchangeTensors} and the point-to-point
 * {@link #sendTensor} / {@link #recvTensor} built on it) take a backend's tensors. Here they stage through host memory in chunks of
 * at most {@link #chunkBytes} ({@link HostStaging}); a transport that can reach the backend's memory
 * (NCCL on CUDA tensors) overrides them to work in place.
 */
public interface Collective {
    /** The chunk of a tensor collective unless a transport says otherwise: large enough to keep links busy. */
    long DEFAULT_CHUNK_BYTES = 64L << 20;

    int rank();

    int size();

    /**
     * Sends {@code values[offset .. offset + length)} to {@code peer}; does not wait for the peer.
     * The caller may reuse {@code values} once it returns.
     */
    void sendFloats(int peer, float[] values, int offset, int length);

    /** Receives exactly {@code length} floats of the next message from {@code peer} into {@code into[offset..]}. */
    void recvFloats(int peer, float[] into, int offset, int length);

    /** Replaces {@code buffer} by the element-wise sum over all ranks, added in rank order. */
    void allReduceSum(float[] buffer);

    /** Copies {@code root}'s buffer into every rank's {@code buffer}. */
    void broadcast(float[] buffer, int root);

    /**
     * All-gather of contiguous parts: on entry this rank's part is in {@code full[offsets[rank()] ..
     * offsets[rank() + 1])}; on return every part is in place. Built on {@link #allReduceSum} over
     * a buffer that is zero outside the own part (adding zeros is exact).
     */
    default void allGatherParts(float[] full, int[] offsets) {
        if (size() == 1) return;
        int r = rank();
        java.util.Arrays.fill(full, 0, offsets[r], 0f);
        java.util.Arrays.fill(full, offsets[r + 1], full.length, 0f);
        allReduceSum(full);
    }

    /** The most bytes one step of a tensor collective or message exchange moves at once. */
    default long chunkBytes() {
        return DEFAULT_CHUNK_BYTES;
    }

    /** Replaces the float tensor {@code t} by its element-wise sum over all ranks. */
    default void allReduceSum(Backend backend, Tensor t) {
        allReduceSum(backend, List.of(t));
    }

    /**
     * Replaces every float tensor of {@code tensors} by its element-wise sum over all ranks; every
     * rank passes tensors of the same shapes in the same order (as a model's gradients). Small tensors
     * share a chunk.
     */
    default void allReduceSum(Backend backend, List<Tensor> tensors) {
        HostStaging.allReduceSum(this, backend, tensors);
    }

    /** Copies {@code root}'s float tensor {@code t} into every rank's {@code t}. */
    default void broadcast(Backend backend, Tensor t, int root) {
        HostStaging.broadcast(this, backend, t, root);
    }

    /**
     * Pairwise messages of any length: sends {@code sends.get(p)} to every peer p of {@code sends},
     * and writes what every peer p of {@code receives} sends into {@code receives.get(p)}, whose
     * length is the length p sends. Both ends of a pair must agree on it. No message is held whole:
     * they move in chunks of at most {@link #chunkBytes}, all messages' chunk k in round k.
     */
    default void exchangeMessages(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        HostStaging.exchangeMessages(this, sends, receives);
    }

    /**
     * {@link #exchangeMessages} of float tensors: sends each tensor of {@code sends} to its peer and
     * fills each tensor of {@code receives} (of the sent tensor's size) from its peer.
     */
    default void exchangeTensors(Backend backend, Map<Integer, Tensor> sends, Map<Integer, Tensor> receives) {
        HostStaging.exchangeTensors(this, backend, sends, receives);
    }

    /**
     * Sends the float tensor {@code t} to {@code peer}, whose {@link #recvTensor} takes it. Unlike
     * {@link #sendFloats} this may wait until the peer receives (NCCL sends are rendezvous): callers
     * use it where the peer posts its receive without first waiting on this rank (a pipeline's
     * stage-to-stage chain); a pair that sends to each other uses {@link #exchangeTensors}.
     */
    default void sendTensor(Backend backend, Tensor t, int peer) {
        exchangeTensors(backend, Map.of(peer, t), Map.of());
    }

    /** Receives into the float tensor {@code t} what {@code peer} sends with {@link #sendTensor} (of {@code t}'s size). */
    default void recvTensor(Backend backend, Tensor t, int peer) {
        exchangeTensors(backend, Map.of(), Map.of(peer, t));
    }

    /**
     * All-gather of equal parts: {@code gathered} (float, {@code size()} times {@code part}'s
     * elements) ends as every rank's {@code part} in rank order. Copies only, so exact.
     */
    default void allGather(Backend backend, Tensor part, Tensor gathered) {
        HostStaging.allGather(this, backend, part, gathered);
    }

    /** The single-rank group: collectives are the identity, point-to-point is an error. */
    static Collective single() {
        return new Collective() {
            @Override
            public int rank() {
                return 0;
            }

            @Override
            public int size() {
                return 1;
            }

            @Override
            public void sendFloats(int peer, float[] values, int offset, int length) {
                throw new IllegalStateException("a single-rank group has no peer " + peer);
            }

            @Override
            public void recvFloats(int peer, float[] into, int offset, int length) {
                throw new IllegalStateException("a single-rank group has no peer " + peer);
            }

            @Override
            public void allReduceSum(float[] buffer) {
            }

            @Override
            public void broadcast(float[] buffer, int root) {
            }
        };
    }
}
