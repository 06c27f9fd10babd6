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

    /** Copies the rectangle from a source shard into {@code out[at..]}, row by row. */
    public void pack(float[] source, float[] out, int at) {
        for (int r = 0; r < rows; r++) {
            System.arraycopy(source, (srcRow + r) * srcStride + srcCol, out, at + r * cols, cols);
        }
    }

    /** Copies the rectangle from {@code in[at..]} into a destination shard. */
    public void unpack(float[] in, int at, float[] destination) {
        for (int r = 0; r < rows; r++) {
            System.arraycopy(in, at + r * cols, destination, (dstRow + r) * dstStride + dstCol, cols);
        }
    }

    /** Copies the rectangle straight from a source shard to a destination shard (same device). */
    public void copy(float[] source, float[] destination) {
        for (int r = 0; r < rows; r++) {
            System.arraycopy(source, (srcRow + r) * srcStride + srcCol, destination, (dstRow + r) * dstStride + dstCol, cols);
        }
    }
}
