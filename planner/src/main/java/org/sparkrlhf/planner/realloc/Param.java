package org.sparkrlhf.planner.realloc;

/**
 * One parameter tensor under its Hugging Face name, as a [rows, cols] matrix (weights are [out, in];
 * a 1-D tensor of length n is [n, 1]). {@code layer} is the decoder layer index, or -1 for the
 * embedding and {@code Integer.MAX_VALUE} for the final norm and head.
 */
public record Param(String name, int layer, long rows, long cols, Split split) {
    public static final int EMBEDDING = -1;
    public static final int FINAL = Integer.MAX_VALUE;

    public long elements() {
        return rows * cols;
    }
}
