package org.sparkrlhf.jobs.graph;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class RowSplitTest {
    /** 12 groups of 3 rows; row s has s % 5 + 1 response tokens. */
    private static int[][] responses() {
        int[][] r = new int[36][];
        for (int s = 0; s < r.length; s++) {
            r[s] = new int[s % 5 + 1];
        }
        return r;
    }

    /** Mini-batch m's rows over all ranks, sorted. */
    private static int[] miniBatch(int[][] responses, int dp, int m, int miniBatches) {
        List<Integer> rows = new ArrayList<>();
        for (int r = 0; r < dp; r++) {
            RankRows mine = RowSplit.rankRows(responses, 3, dp, r, miniBatches);
            for (int i = mine.miniBatches().start(m); i < mine.miniBatches().start(m + 1); i++) {
                rows.add(mine.index()[i]);
            }
        }
        return rows.stream().mapToInt(Integer::intValue).sorted().toArray();
    }

    @Test
    void aMiniBatchHoldsTheSameRowsWhateverTheDataParallelDegree() {
        int[][] responses = responses();
        for (int miniBatches : new int[]{1, 2, 4, 5}) {
            for (int m = 0; m < miniBatches; m++) {
                // groups [m G / M, (m + 1) G / M) of G = 12, 3 rows each
                int[] expected = IntStream.range(m * 12 / miniBatches * 3, (m + 1) * 12 / miniBatches * 3).toArray();
                int tokens = Arrays.stream(expected).map(s -> responses[s].length).sum();
                for (int dp : new int[]{1, 2, 3, 4, 8}) {
                    String where = "dp " + dp + ", mini-batch " + m + " of " + miniBatches;
                    assertArrayEquals(expected, miniBatch(responses, dp, m, miniBatches), where);
                    for (int r = 0; r < dp; r++) {
                        assertEquals(tokens, RowSplit.rankRows(responses, 3, dp, r, miniBatches).miniBatches().tokens()[m], where);
                    }
                }
            }
        }
    }

    @Test
    void ranksGetWholeGroupsAndOneStepIsTheContiguousSplit() {
        int[][] responses = responses();
        for (int dp : new int[]{1, 2, 3, 5}) {
            for (int r = 0; r < dp; r++) {
                RankRows one = RowSplit.rankRows(responses, 3, dp, r, 1);
                int[] contiguous = IntStream.range(RowSplit.from(36, 3, dp, r), RowSplit.from(36, 3, dp, r + 1)).toArray();
                assertArrayEquals(contiguous, one.index());
                RankRows four = RowSplit.rankRows(responses, 3, dp, r, 4);
                for (int i = 0; i < four.size(); i += 3) {
                    assertEquals(0, four.index()[i] % 3, "a group starts at row " + four.index()[i]);
                    assertEquals(four.index()[i] + 2, four.index()[i + 2]);
                }
            }
        }
    }
}
