package org.sparkrlhf.planner.realloc;

/**
 * One copy of a rectangle of parameter {@code param}: rows {@code [rowStart, rowEnd)} and columns
 * {@code [colStart, colEnd)} of the full tensor go from device {@code srcGpu}, where they sit at
 * ({@code srcRow}, {@code srcCol}) of its shard, to device {@code dstGpu}, at ({@code dstRow},
 * {@code dstCol}) of its new shard. {@code srcGpu == dstGpu} is a local copy. {@code bytes} at the plan's
 * element size.
 */
public record Transfer(String param, int srcGpu, int dstGpu, long rowStart, long rowEnd, long colStart, long colEnd,
                       long srcRow, long srcCol, long dstRow, long dstCol, long bytes) {
    public boolean local() {
        return srcGpu == dstGpu;
    }

    public long rows() {
        return rowEnd - rowStart;
    }

    public long cols() {
        return colEnd - colStart;
    }
}
