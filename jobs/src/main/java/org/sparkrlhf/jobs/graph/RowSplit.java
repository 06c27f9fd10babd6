package org.sparkrlhf.jobs.graph;

/**
 * How a call's rows are cut among its data-parallel ranks and a train call's mini-batches. Rows come
 * in groups of {@code group} consecutive rows (a prompt's samples); rank r of dp gets groups
 * [r * G / dp, (r + 1) * G / dp) of the G groups, so a group never straddles two ranks. Within a rank
 * of n rows, mini-batch m of M is rows [m * n / M, (m + 1) * n / M).
 */
public final class RowSplit {
    private RowSplit() {
    }

    /** The first row of data-parallel rank {@code r} of {@code dp} (rank dp: one past the last row). */
    public static int from(int rows, int group, int dp, int r) {
        if (rows % group != 0) {
            throw new IllegalArgumentException(rows + " rows are not whole groups of " + group);
        }
        return r * (rows / group) / dp * group;
    }

    /**
     * Each mini-batch's response tokens over all data-parallel ranks: the denominator of a token-mean
     * loss, so that the gradients summed over ranks are the mini-batch's mean.
     */
    public static int[] miniBatchTokens(int[][] responses, int dp, int group, int miniBatches) {
        int[] tokens = new int[miniBatches];
        for (int r = 0; r < dp; r++) {
            int from = from(responses.length, group, dp, r);
            int n = from(responses.length, group, dp, r + 1) - from;
            for (int m = 0; m < miniBatches; m++) {
                for (int s = from + m * n / miniBatches; s < from + (m + 1) * n / miniBatches; s++) {
                    tokens[m] += responses[s].length;
                }
            }
        }
        return tokens;
    }

    /** Rows [from, to) of {@code a}. */
    public static <T> T[] rows(T[] a, int from, int to) {
        return java.util.Arrays.copyOfRange(a, from, to);
    }
}
