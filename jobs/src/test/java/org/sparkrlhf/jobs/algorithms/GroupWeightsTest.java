package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GroupWeightsTest {
    private static final List<String> GROUPS = List.of("a", "b");
    // N_a = 3, N_b = 1 pairs in the training set: N = 4
    private static final long[] COUNTS = {3, 1};

    @Test
    void twoStepsOfTheMirrorAscentRuleByHand() {
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET);
        assertArrayEquals(new double[]{0.5, 0.5}, w.weights(), 0); // uniform start

        // step 1, batch of B = 3: pairs of groups a, a, b with losses 1, 0.5, 2
        float[] losses = {1f, 0.5f, 2f};
        int[] groups = {0, 0, 1};
        double[] l = w.groupLosses(losses, groups);
        // L_a = (1/B) (N/N_a) (1 + 0.5) = (1/3)(4/3)(1.5) = 2/3; L_b = (1/3)(4/1)(2) = 8/3
        assertArrayEquals(new double[]{2.0 / 3, 8.0 / 3}, l, 1e-12);
        // alpha_g <- 0.5 exp(0.5 L_g), normalised: proportional to (e^(1/3), e^(4/3)), i.e. to (1, e)
        double a1 = 1 / (1 + Math.E); // 0.2689414213699951
        assertArrayEquals(new double[]{a1, 1 - a1}, w.update(l), 1e-12);
        // pair weights alpha_g N / N_g: a: 0.2689414213699951 * 4/3, b: 0.7310585786300049 * 4
        float[] pw = w.pairWeights(groups);
        assertArrayEquals(new float[]{0.35858856182666016f, 0.35858856182666016f, 2.9242343145200196f}, pw, 1e-7f);
        // the objective alpha_a L_a + alpha_b L_b = 2.1287838239266765 is the weighted loss over B = 3 pairs
        assertEquals(2.1287838239266765, w.objective(l), 1e-12);
        assertEquals(2.1287838239266765, (pw[0] * 1.0 + pw[1] * 0.5 + pw[2] * 2.0) / 3, 1e-6);

        // step 2, batch of B = 2, both of group b, losses 0.2 and 0.4: L_a = 0, L_b = (1/2)(4)(0.6) = 1.2
        double[] l2 = w.groupLosses(new float[]{0.2f, 0.4f}, new int[]{1, 1});
        assertArrayEquals(new double[]{0, 1.2}, l2, 1e-7);
        // alpha proportional to (1, e) * (e^0, e^0.6) = (1, e^1.6): alpha_a = 1 / (1 + e^1.6) = 0.16798161486607552
        double[] a2 = w.update(l2);
        assertArrayEquals(new double[]{0.16798161486607552, 0.8320183851339245}, a2, 1e-7);
        // mirror ascent from uniform weights = a softmax of step size times the cumulative group losses
        double za = 0.5 * (l[0] + l2[0]);
        double zb = 0.5 * (l[1] + l2[1]);
        assertEquals(Math.exp(za) / (Math.exp(za) + Math.exp(zb)), a2[0], 1e-12);
    }

    @Test
    void batchScalingUsesTheGroupsMeansInTheBatch() {
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 1.0, GroupWeights.Scaling.BATCH);
        int[] groups = {0, 0, 1};
        // L_a = (1 + 0.5) / 2 = 0.75, L_b = 2
        double[] l = w.groupLosses(new float[]{1f, 0.5f, 2f}, groups);
        assertArrayEquals(new double[]{0.75, 2.0}, l, 1e-12);
        // proportional to (e^0.375, e^1): alpha_a = 1 / (1 + e^0.625) = 0.34864513533394575
        double[] a = w.update(l);
        assertEquals(0.34864513533394575, a[0], 1e-12);
        // pair weights alpha_g B / n_g: a: alpha_a * 3/2, b: alpha_b * 3/1
        float[] pw = w.pairWeights(groups);
        assertArrayEquals(new float[]{(float) (a[0] * 1.5), (float) (a[0] * 1.5), (float) (a[1] * 3)}, pw, 1e-7f);
        assertEquals(w.objective(l), (pw[0] * 1.0 + pw[1] * 0.5 + pw[2] * 2.0) / 3, 1e-6);
    }

    @Test
    void chiTradesTheWorstGroupAgainstTheAverage() {
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 0.5, GroupWeights.Scaling.BATCH);
        // exponent step size * chi * L: 0.25 * (0.75, 2): alpha_a = 1 / (1 + e^0.3125)
        double[] a = w.update(new double[]{0.75, 2.0});
        double alphaA = 1 / (1 + Math.exp(0.3125));
        assertEquals(alphaA, a[0], 1e-12);
        // objective weights (1 - chi)/K + chi alpha_g = 0.25 + 0.5 alpha_g
        assertEquals(0.25 + 0.5 * alphaA, w.objectiveWeight(0), 1e-12);
        GroupWeights average = new GroupWeights(GROUPS, COUNTS, 0.5, 0.0, GroupWeights.Scaling.BATCH);
        average.update(new double[]{0.75, 2.0});
        assertArrayEquals(new double[]{0.5, 0.5}, average.weights(), 0); // chi = 0: plain DPO / IPO
    }

    @Test
    void sumsAndCountsOfSplitPairsGiveTheWholeBatchs() {
        // pairs a, b, a, a, b with their losses, as two data-parallel ranks hold them: {0, 1} and {2, 3, 4}
        float[] losses = {1f, 0.5f, 2f, 0.25f, 3f};
        int[] groups = {0, 1, 0, 0, 1};
        for (GroupWeights.Scaling scaling : GroupWeights.Scaling.values()) {
            GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 0.7, scaling);
            // summed over the ranks: a: 1 + 2 + 0.25 over 3 pairs, b: 0.5 + 3 over 2
            double[] sums = {3.25, 3.5};
            long[] counts = {3, 2};
            assertArrayEquals(counts, w.batchCounts(groups));
            assertArrayEquals(w.groupLosses(losses, groups), w.groupLosses(sums, counts), 1e-12);
            w.update(w.groupLosses(sums, counts));
            float[] all = w.pairWeights(groups);
            assertArrayEquals(new float[]{all[0], all[1]}, w.pairWeights(new int[]{0, 1}, counts), 0f);
            assertArrayEquals(new float[]{all[2], all[3], all[4]}, w.pairWeights(new int[]{0, 0, 1}, counts), 0f);
            assertArrayEquals(new float[0], w.pairWeights(new int[0], counts), 0f); // a rank without pairs
        }
    }

    @Test
    void stateRoundTripsThroughACheckpoint() {
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET);
        w.update(new double[]{2.0 / 3, 8.0 / 3});
        GroupWeights.State saved = w.state();
        assertEquals(List.of("a", "b"), saved.groups());
        GroupWeights resumed = new GroupWeights(GROUPS, COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET);
        resumed.restore(saved);
        assertArrayEquals(w.weights(), resumed.weights(), 0);
        assertEquals(saved, resumed.state());
        GroupWeights other = new GroupWeights(List.of("b", "a"), COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET);
        assertThrows(IllegalArgumentException.class, () -> other.restore(saved));
        assertThrows(IllegalArgumentException.class,
                () -> resumed.restore(new GroupWeights.State(GROUPS, List.of(0.5, 0.6))));
    }

    @Test
    void hugeLossesDoNotOverflow() {
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 1.0, 1.0, GroupWeights.Scaling.BATCH);
        double[] a = w.update(new double[]{5000, 5001});
        assertEquals(1 / (1 + Math.E), a[0], 1e-12);
        assertTrue(a[0] + a[1] > 0.999999);
    }

    @Test
    void rejectsBadGroups() {
        assertThrows(IllegalArgumentException.class,
                () -> new GroupWeights(GROUPS, new long[]{3, 0}, 0.5, 1.0, GroupWeights.Scaling.DATASET));
        assertThrows(IllegalArgumentException.class,
                () -> new GroupWeights(List.of("a", "a"), COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET));
        GroupWeights w = new GroupWeights(GROUPS, COUNTS, 0.5, 1.0, GroupWeights.Scaling.DATASET);
        assertThrows(IllegalArgumentException.class, () -> w.groupLosses(new float[]{1f}, new int[]{2}));
        assertThrows(IllegalArgumentException.class, () -> w.index("c"));
        assertEquals(1, w.index("b"));
    }
}
