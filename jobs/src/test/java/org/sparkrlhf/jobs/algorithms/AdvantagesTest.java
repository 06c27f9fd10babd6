package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class AdvantagesTest {
    @Test
    void gaeByHand() {
        // row 0: a prompt token (masked out), three response tokens, one pad; row 1: two response tokens
        int[] mask = {0, 1, 1, 1, 0, 1, 1, 0, 0, 0};
        float[] rewards = {9f, 0f, 0f, 1f, 9f, 0f, 2f, 0f, 0f, 0f};
        float[] values = {9f, 0.5f, 0.6f, 0.7f, 9f, 1f, 0.5f, 0f, 0f, 0f};
        Advantages.Gae gae = Advantages.gae(rewards, values, mask, 2, 1.0, 0.95);
        // row 0: A2 = 1 - 0.7 = 0.3; A1 = (0.7 - 0.6) + 0.95 * 0.3 = 0.385; A0 = (0.6 - 0.5) + 0.95 * 0.385 = 0.46575
        // row 1: A1 = 2 - 0.5 = 1.5; A0 = (0.5 - 1) + 0.95 * 1.5 = 0.925
        assertArrayEquals(new float[]{0f, 0.46575f, 0.385f, 0.3f, 0f, 0.925f, 1.5f, 0f, 0f, 0f}, gae.advantages(), 1e-6f);
        assertArrayEquals(new float[]{0f, 0.96575f, 0.985f, 1.0f, 0f, 1.925f, 2.0f, 0f, 0f, 0f}, gae.returns(), 1e-6f);
    }

    @Test
    void gaeWithLambdaOneReturnsTheDiscountedRewardToGo() {
        int[] mask = {1, 1, 1, 1};
        float[] rewards = {0.5f, -1f, 0.25f, 2f};
        float[] values = {0.3f, -0.2f, 0.9f, 0.1f};
        double gamma = 0.9;
        Advantages.Gae gae = Advantages.gae(rewards, values, mask, 1, gamma, 1.0);
        double togo = 0;
        for (int t = 3; t >= 0; t--) {
            togo = rewards[t] + gamma * togo;
            assertEquals(togo, gae.returns()[t], 1e-6);
        }
    }

    @Test
    void whiteningGivesMeanZeroAndUnitVariance() {
        float[] x = {3f, 1f, 100f, 4f, 1f, 5f, -9f};
        int[] mask = {1, 1, 0, 1, 1, 1, 1};
        Advantages.whiten(x, mask);
        double mean = 0;
        for (int i = 0; i < x.length; i++) {
            mean += mask[i] * x[i];
        }
        mean /= 6;
        double var = 0;
        for (int i = 0; i < x.length; i++) {
            var += mask[i] * (x[i] - mean) * (x[i] - mean);
        }
        assertEquals(0.0, mean, 1e-6);
        assertEquals(1.0, var / 5, 1e-6);
        assertEquals(0f, x[2]);
    }

    @Test
    void groupNormalisedAdvantages() {
        float[] adv = Advantages.groupNormalised(new float[]{1f, 0f, 0f, 1f, 0.5f, 0.5f, 0.5f, 0.5f}, 4);
        double std = Math.sqrt(4 * 0.25 / 3);
        float a = (float) (0.5 / (std + 1e-4));
        assertArrayEquals(new float[]{a, -a, -a, a, 0f, 0f, 0f, 0f}, adv, 1e-6f);
        assertThrows(IllegalArgumentException.class, () -> Advantages.groupNormalised(new float[5], 4));
        assertArrayEquals(new float[]{0f, a, a, 0f, -a, 0f}, Advantages.perToken(new float[]{a, -a}, new int[]{0, 1, 1, 0, 1, 0}));
    }

    @Test
    void ppoRewardsPenaliseKlAndAddTheClippedScoreOnTheLastToken() {
        int[] mask = {0, 1, 1, 0, 1, 1, 1, 0};
        float[] logp = {0f, -1f, -2f, 0f, -0.5f, -0.5f, -3f, 0f};
        float[] ref = {0f, -1.5f, -1f, 0f, -0.5f, -1f, -2f, 0f};
        float[] r = Advantages.ppoRewards(new float[]{20f, -0.5f}, logp, ref, mask, 0.1, KlEstimator.K1, 5.0);
        // k1 = logp - ref: 0.5, -1 | 0, 0.5, -1
        assertArrayEquals(new float[]{0f, -0.05f, 0.1f + 5f, 0f, 0f, -0.05f, 0.1f - 0.5f, 0f}, r, 1e-6f);
    }

    @Test
    void rlooSubtractsTheMeanOfTheOtherSamples() {
        float[] adv = Advantages.rloo(new float[]{1f, 0f, 0f, 1f, 2f, 4f, 6f, 8f}, 4);
        // group 1, sum 2: 1 - (2 - 1)/3 = 2/3, 0 - (2 - 0)/3 = -2/3
        // group 2, sum 20: 2 - 18/3 = -4, 4 - 16/3 = -4/3, 6 - 14/3 = 4/3, 8 - 12/3 = 4
        assertArrayEquals(new float[]{2f / 3, -2f / 3, -2f / 3, 2f / 3, -4f, -4f / 3, 4f / 3, 4f}, adv, 1e-6f);
        assertThrows(IllegalArgumentException.class, () -> Advantages.rloo(new float[4], 1));
        assertThrows(IllegalArgumentException.class, () -> Advantages.rloo(new float[5], 2));
    }

    @Test
    void remaxSubtractsThePromptsGreedyReward() {
        // prompt 0: greedy 0.5, samples 1, 0.5, 0; prompt 1: greedy 2, samples 2, 3, 1
        float[] adv = Advantages.remax(new float[]{1f, 0.5f, 0f, 2f, 3f, 1f}, new float[]{0.5f, 2f}, 3);
        assertArrayEquals(new float[]{0.5f, 0f, -0.5f, 0f, 1f, -1f}, adv, 1e-7f);
        assertThrows(IllegalArgumentException.class, () -> Advantages.remax(new float[5], new float[2], 3));
    }
}
