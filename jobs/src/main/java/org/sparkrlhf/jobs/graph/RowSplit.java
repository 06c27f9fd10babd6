package org.sparkrlhf.jobs.graph;

/**
 * How a call's rows are cut among its data-parallel ranks and a train call's mini-batches. Rows come
 * in groups of {@code group} consecutive rows (a prompt's samples); rank r of dp gets groups
 * [r * G / dp, (r + 1) * G / dp) of the G groups, so a group never straddles two ranks. A train call
 * of M mini-batches cuts the batch into M first and each mini-batch among the ranks
 * ({@link #rankRows}).
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
     * Rank r of dp's rows of a train call of {@code miniBatches} optimizer steps over the batch's
     * {@code responses}: mini-batch m is groups [m G / M, (m + 1) G / M) of the batch's G groups,
     * whatever dp (so that the steps, and the trained model, do not depend on the layout), and rank r
     * gets groups [r g / dp, (r + 1) g / dp) of each mini-batch's g groups, mini-batch after
     * mini-batch. With one step this is the rank's rows [from(r), from(r + 1)).
     */
    public static RankRows rankRows(int[][] responses, int group, int dp, int r, int miniBatches) {
        int rows = responses.length;
        from(rows, group, dp, r); // checks whole groups
        int groups = rows / group;
        int[] starts = new int[miniBatches + 1];
        int[] tokens = new int[miniBatches];
        int[] index = new int[rows];
        int n = 0;
        for (int m = 0; m < miniBatches; m++) {
            int first = m * groups / miniBatches;
            int count = (m + 1) * groups / miniBatches - first;
            for (int s = first * group; s < (first + count) * group; s++) {
                tokens[m] += responses[s].length;
            }
            starts[m] = n;
            for (int s = (first + r * count / dp) * group; s < (first + (r + 1) * count / dp) * group; s++) {
                index[n++] = s;
            }
        }
        starts[miniBatches] = n;
        return new RankRows(java.util.Arrays.copyOf(index, n), new org.sparkrlhf.jobs.calls.MiniBatches(starts, tokens));
    }

    /** Rows [from, to) of {@code a}. */
    public static <T> T[] rows(T[] a, int from, int to) {
        return java.util.Arrays.copyOfRange(a, from, to);
    }
}
