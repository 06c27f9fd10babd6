package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class PpoTargetsTest {
    // row 0: two response tokens, score 1; row 1: one token, score 3 (clipped to 2)
    static final float[] SCORES = {1f, 3f};
    static final float[][] LOGP = {{-1f, -2f}, {-0.5f}};
    static final float[][] REF = {{-1.5f, -1f}, {-0.5f}};
    static final float[][] VALUES = {{0.5f, 0.25f}, {0.2f}};

    @Test
    void rewardsAdvantagesAndReturnsByHand() {
        PpoTargets.Result r = PpoTargets.compute(SCORES, LOGP, REF, VALUES, 0.1, KlEstimator.K1, 2.0, 1.0, 0.5, false);
        // k1 = logp - ref: row 0: 0.5, -1; row 1: 0
        // rewards: row 0: -0.05, 0.1 + 1 = 1.1; row 1: 0 + clip(3) = 2
        assertArrayEquals(new float[]{-0.05f, 1.1f}, r.tokenRewards()[0], 1e-6f);
        assertArrayEquals(new float[]{2f}, r.tokenRewards()[1], 1e-6f);
        // row 0: A1 = 1.1 - 0.25 = 0.85; A0 = (-0.05 + 0.25 - 0.5) + 0.5 * 0.85 = 0.125; row 1: A = 2 - 0.2 = 1.8
        assertArrayEquals(new float[]{0.125f, 0.85f}, r.advantages()[0], 1e-6f);
        assertArrayEquals(new float[]{1.8f}, r.advantages()[1], 1e-6f);
        // returns = A + V
        assertArrayEquals(new float[]{0.625f, 1.1f}, r.returns()[0], 1e-6f);
        assertArrayEquals(new float[]{2.0f}, r.returns()[1], 1e-6f);
        // the sequence KL is the sum of the per-token k1 estimates
        assertEquals(-0.5, r.sequenceKl()[0], 1e-9);
        assertEquals(0.0, r.sequenceKl()[1], 1e-9);
    }

    @Test
    void whiteningChangesTheAdvantagesOnlyAndUsesTheWholeBatch() {
        PpoTargets.Result r = PpoTargets.compute(SCORES, LOGP, REF, VALUES, 0.1, KlEstimator.K1, 2.0, 1.0, 0.5, true);
        // advantages 0.125, 0.85, 1.8: mean 0.925, unbiased variance (0.64 + 0.005625 + 0.765625) / 2 = 0.705625
        double std = Math.sqrt(0.705625 + 1e-8);
        assertArrayEquals(new float[]{(float) (-0.8 / std), (float) (-0.075 / std)}, r.advantages()[0], 1e-5f);
        assertArrayEquals(new float[]{(float) (0.875 / std)}, r.advantages()[1], 1e-5f);
        assertArrayEquals(new float[]{0.625f, 1.1f}, r.returns()[0], 1e-6f);
    }

    @Test
    void k3PenaltyWithDiscount() {
        // one row of two tokens, score 1; k3 = exp(ref - logp) - 1 - (ref - logp)
        float[][] logp = {{-1f, -1f}};
        float[][] ref = {{-2f, -1f}};
        PpoTargets.Result r = PpoTargets.compute(new float[]{1f}, logp, ref, new float[][]{{0f, 0f}}, 0.5,
                KlEstimator.K3, 10.0, 0.9, 1.0, false);
        double k3 = Math.exp(-1) - 1 + 1;
        assertArrayEquals(new float[]{(float) (-0.5 * k3), 1f}, r.tokenRewards()[0], 1e-6f);
        // lambda = 1, values 0: the advantages are the discounted rewards to go
        assertArrayEquals(new float[]{(float) (-0.5 * k3 + 0.9), 1f}, r.advantages()[0], 1e-6f);
        assertEquals(k3, r.sequenceKl()[0], 1e-6);
    }

    @Test
    void raggedRowsMustAgree() {
        assertThrows(IllegalArgumentException.class, () -> PpoTargets.compute(SCORES, LOGP, REF,
                new float[][]{{0.5f}, {0.2f}}, 0.1, KlEstimator.K1, 2.0, 1.0, 0.5, false));
    }
}
