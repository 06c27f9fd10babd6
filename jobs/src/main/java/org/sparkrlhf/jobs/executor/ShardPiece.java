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

    /**
     * Copies elements {@code [first, first + n)} of the rectangle (row-major) from a source shard
     * into {@code out[at ..]}: a message carries pieces in chunks, which may start or end mid-row.
     */
    public void pack(float[] source, int first, float[] out, int at, int n) {
        for (int e = first; e < first + n; ) {
            int r = e / cols, c = e % cols, run = Math.min(cols - c, first + n - e);
            System.arraycopy(source, (srcRow + r) * srcStride + srcCol + c, out, at + e - first, run);
            e += run;
        }
    }

    /** Copies {@code in[at .. at + n)} as elements {@code [first, first + n)} of the rectangle into a destination shard. */
    public void unpack(float[] in, int at, int first, int n, float[] destination) {
        for (int e = first; e < first + n; ) {
            int r = e / cols, c = e % cols, run = Math.min(cols - c, first + n - e);
            System.arraycopy(in, at + e - first, destination, (dstRow + r) * dstStride + dstCol + c, run);
            e += run;
        }
    }

    /** Copies the rectangle straight from a source shard to a destination shard (same device). */
    public void copy(float[] source, float[] destination) {
        for (int r = 0; r < rows; r++) {
            System.arraycopy(source, (srcRow + r) * srcStride + srcCol, destination, (dstRow + r) * dstStride + dstCol, cols);
        }
    }
}
