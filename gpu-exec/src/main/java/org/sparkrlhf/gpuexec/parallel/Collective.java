package org.sparkrlhf.gpuexec.parallel;

/**
 * The communication one rank of a tensor- or pipeline-parallel group needs: ordered point-to-point
 * float messages and two collectives. Ranks are numbered within the group: in a tensor-parallel
 * group rank t is tensor rank t, in a pipeline group rank s is stage s.
 *
 * <p>Implementations must be deterministic (an all-reduce adds the ranks' buffers in rank order on
 * every rank, so every rank ends with the same bits), and {@link #sendFloats} must not wait for the
 * peer to receive: the pipeline and the tied-embedding exchange rely on sends that do not block.
 */
public interface Collective {
    int rank();

    int size();

    /** Sends {@code values[offset .. offset + length)} to {@code peer}; does not wait for the peer. */
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
