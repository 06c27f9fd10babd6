package org.sparkrlhf.jobs.executor;

import java.io.Serializable;

/**
 * One rectangle of a reallocation, as the executors carry it out: {@code rows x cols} elements of
 * parameter {@code param} go from the shard on device {@code srcDevice}, where they start at
 * ({@code srcRow}, {@code srcCol}) of a shard {@code srcStride} columns wide, to the shard on
 * device {@code dstDevice}, at ({@code dstRow}, {@code dstCol}) of a shard {@code dstStride}
 * columns wide. The planner's {@code Transfer}, with the shard widths the executors need.
 */
public record ShardPiece(String param, int srcDevice, int dstDevice, int rows, int cols, int srcRow, int srcCol,
                         int srcStride, int dstRow, int dstCol, int dstStride) implements Serializable {
    public int elements() {
        return rows * cols;
    }

    /** A run of consecutive elements of the rectangle that lies in one row of a shard. */
    public interface Run {
        /**
         * Elements {@code [offset, offset + n)} of the range visited (counted from its first element)
         * are elements {@code [shardAt, shardAt + n)} of the shard, row-major.
         */
        void visit(int shardAt, int offset, int n);
    }

    /**
     * Visits elements {@code [first, first + n)} of the rectangle (row-major) as runs within one row
     * of the source shard ({@code source}) or of the destination shard: a message carries pieces in
     * chunks, which may start or end mid-row. Where the rectangle spans whole rows of that shard (a
     * row cut, a 1-D tensor) it is contiguous there, and the range is one run.
     */
    public void runs(int first, int n, boolean source, Run run) {
        int row0 = source ? srcRow : dstRow, col0 = source ? srcCol : dstCol, stride = source ? srcStride : dstStride;
        if (cols == stride) {
            if (n > 0) {
                run.visit(row0 * stride + first, 0, n);
            }
            return;
        }
        for (int e = first; e < first + n; ) {
            int r = e / cols, c = e % cols, k = Math.min(cols - c, first + n - e);
            run.visit((row0 + r) * stride + col0 + c, e - first, k);
            e += k;
        }
    }
}
