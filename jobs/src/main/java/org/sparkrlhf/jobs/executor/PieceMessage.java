package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * The pieces of a reallocation that one rank sends to one peer (or receives from it), one after the
 * other in the plan's order, as one message that the transport reads or writes a chunk at a time:
 * the message is never packed whole, so its size is bounded by nothing but the shards.
 *
 * <p>{@code shard} holds the parameters' slices: the source's (sends) or the destination's
 * (receives), read and written by ranges ({@link ShardSlices}), one run within a shard row at a
 * time. A chunk the transport holds on the device (NCCL) goes between it and slices that are
 * tensors of the same backend by device copies, so a GPU destination receives straight into its
 * parameter tensors.
 */
final class PieceMessage implements FloatMessage {
    private final List<ShardPiece> pieces;
    /** starts[i]: the message element where piece i begins; starts[pieces.size()]: the length. */
    private final long[] starts;
    private final ShardSlices shard;

    /** A message over host arrays of the slices ({@code shard} gives a parameter's). */
    PieceMessage(List<ShardPiece> pieces, Function<String, float[]> shard) {
        this(pieces, ShardSlices.ofArrays(shard));
    }

    PieceMessage(List<ShardPiece> pieces, ShardSlices shard) {
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
        walk(from, n, (p, first, offset, k) -> p.runs(first, k, true,
                (shardAt, o, run) -> shard.read(p.param(), shardAt, into, at + offset + o, run)));
    }

    @Override
    public void write(long from, float[] values, int at, int n) {
        walk(from, n, (p, first, offset, k) -> p.runs(first, k, false,
                (shardAt, o, run) -> shard.write(p.param(), shardAt, values, at + offset + o, run)));
    }

    @Override
    public void read(long from, Backend backend, Tensor chunk, int n) {
        walk(from, n, (p, first, offset, k) -> {
            Tensor slice = shard.tensorOn(backend, p.param());
            if (slice == null) {
                float[] host = new float[k];
                p.runs(first, k, true, (shardAt, o, run) -> shard.read(p.param(), shardAt, host, o, run));
                backend.uploadRange(chunk, offset, host, 0, k);
            } else {
                p.runs(first, k, true, (shardAt, o, run) -> backend.copyRange(chunk, offset + o, slice, shardAt, run));
            }
        });
    }

    @Override
    public void write(long from, Backend backend, Tensor chunk, int n) {
        walk(from, n, (p, first, offset, k) -> {
            Tensor slice = shard.tensorOn(backend, p.param());
            if (slice == null) {
                float[] host = new float[k];
                backend.downloadRange(chunk, offset, host, 0, k);
                p.runs(first, k, false, (shardAt, o, run) -> shard.write(p.param(), shardAt, host, o, run));
            } else {
                p.runs(first, k, false, (shardAt, o, run) -> backend.copyRange(slice, shardAt, chunk, offset + o, run));
            }
        });
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
}
