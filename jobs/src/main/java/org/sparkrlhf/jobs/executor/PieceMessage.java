package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * The pieces of a reallocation that one rank sends to one peer (or receives from it), one after the
 * other in the plan's order, as one message that the transport reads or writes a chunk at a time:
 * the message is never packed whole, so its size is bounded by nothing but the shards.
 *
 * <p>{@code shard} gives the array of a parameter's slice: the source's (sends) or the destination's
 * (receives). Only the slice of the piece at hand is held, so a source copy whose tensors are
 * downloaded on request has one of them on the host at a time (pieces of one parameter follow each
 * other in the plan).
 */
final class PieceMessage implements FloatMessage {
    private final List<ShardPiece> pieces;
    /** starts[i]: the message element where piece i begins; starts[pieces.size()]: the length. */
    private final long[] starts;
    private final Function<String, float[]> shard;
    private String heldName;
    private float[] held;

    PieceMessage(List<ShardPiece> pieces, Function<String, float[]> shard) {
        this.pieces = List.copyOf(pieces);
        this.shard = shard;
        this.starts = new long[pieces.size() + 1];
        for (int i = 0; i < pieces.size(); i++) {
            starts[i + 1] = starts[i] + pieces.get(i).elements();
        }
    }

    @Override
    public long length() {
        return starts[pieces.size()];
    }

    @Override
    public void read(long from, float[] into, int at, int n) {
        walk(from, n, (p, first, offset, k) -> p.pack(slice(p.param()), first, into, at + offset, k));
    }

    @Override
    public void write(long from, float[] values, int at, int n) {
        walk(from, n, (p, first, offset, k) -> p.unpack(values, at + offset, first, k, slice(p.param())));
    }

    private interface Step {
        /** Elements {@code [first, first + k)} of piece {@code p} are elements {@code offset ..} of the range. */
        void run(ShardPiece p, int first, int offset, int k);
    }

    /** Visits the pieces that elements {@code [from, from + n)} of the message fall in. */
    private void walk(long from, int n, Step step) {
        if (from < 0 || n < 0 || from + n > length()) {
            throw new IndexOutOfBoundsException("elements " + from + " .. " + (from + n) + " of a message of " + length());
        }
        int i = Arrays.binarySearch(starts, from);
        i = i >= 0 ? i : -i - 2;
        int offset = 0;
        while (offset < n) {
            ShardPiece p = pieces.get(i);
            int first = (int) (from + offset - starts[i]);
            int k = Math.min(p.elements() - first, n - offset);
            if (k > 0) {
                step.run(p, first, offset, k);
                offset += k;
            }
            i++;
        }
    }

    private float[] slice(String name) {
        if (!name.equals(heldName)) {
            held = shard.apply(name);
            heldName = name;
        }
        return held;
    }
}
