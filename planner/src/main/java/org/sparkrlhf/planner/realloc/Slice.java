package org.sparkrlhf.planner.realloc;

/** A rectangle of a [rows, cols] tensor: rows {@code [rowStart, rowEnd)}, columns {@code [colStart, colEnd)}. */
public record Slice(long rowStart, long rowEnd, long colStart, long colEnd) {
    public Slice {
        if (rowStart < 0 || rowEnd < rowStart || colStart < 0 || colEnd < colStart) {
            throw new IllegalArgumentException("bad slice rows [" + rowStart + "," + rowEnd + ") cols [" + colStart + ","
                    + colEnd + ")");
        }
    }

    public long rows() {
        return rowEnd - rowStart;
    }

    public long cols() {
        return colEnd - colStart;
    }

    public long elements() {
        return rows() * cols();
    }

    public boolean isEmpty() {
        return rows() == 0 || cols() == 0;
    }

    /** The overlap with {@code o}, or null if there is none. */
    public Slice intersect(Slice o) {
        long r0 = Math.max(rowStart, o.rowStart);
        long r1 = Math.min(rowEnd, o.rowEnd);
        long c0 = Math.max(colStart, o.colStart);
        long c1 = Math.min(colEnd, o.colEnd);
        if (r0 >= r1 || c0 >= c1) {
            return null;
        }
        return new Slice(r0, r1, c0, c1);
    }

    /** Part {@code i} of {@code n} balanced contiguous ranges of {@code [0, total)}: start. */
    public static long partStart(long total, int n, int i) {
        return total * i / n;
    }
}
