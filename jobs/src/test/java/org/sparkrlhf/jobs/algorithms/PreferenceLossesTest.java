package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class PreferenceLossesTest {
    // pair 0: h = (-3 - -4) - (-5 - -5) = 1; pair 1: h = (-2 - -1) - (-2 - -3) = -2
    private static final float[] PI_C = {-3f, -2f};
    private static final float[] PI_R = {-5f, -2f};
    private static final float[] REF_C = {-4f, -1f};
    private static final float[] REF_R = {-5f, -3f};

    @Test
    void dpoByHand() {
        PreferenceLosses.Result r = PreferenceLosses.compute(PreferenceLosses.Kind.DPO, PI_C, PI_R, REF_C, REF_R, 0.5,
                null, 2);
        // beta * h = 0.5, -1; -log sigmoid(0.5) = log(1 + e^-0.5) = 0.4740769841801067, -log sigmoid(-1) = 1.3132616875182228
        assertArrayEquals(new float[]{0.4740769841801067f, 1.3132616875182228f}, r.pairLosses(), 1e-7f);
        assertEquals((0.4740769841801067 + 1.3132616875182228) / 2, r.loss(), 1e-7);
        // dl/dpi_c = -beta * sigmoid(-beta h) / 2: -0.5 * 0.3775406687981454 / 2, -0.5 * 0.7310585786300049 / 2
        assertArrayEquals(new float[]{-0.09438516719953635f, -0.18276464465750122f}, r.dChosen(), 1e-8f);
        assertArrayEquals(new float[]{0.09438516719953635f, 0.18276464465750122f}, r.dRejected(), 1e-8f);
        assertArrayEquals(new float[]{0.5f, -1f}, r.margins());
        assertEquals(0.5f, r.accuracy());
    }

    @Test
    void pairWeightsScaleLossAndGradient() {
        PreferenceLosses.Result r = PreferenceLosses.compute(PreferenceLosses.Kind.DPO, PI_C, PI_R, REF_C, REF_R, 0.5,
                new float[]{3f, 1f}, 2);
        // (3 * 0.4740769841801067 + 1.3132616875182228) / 2
        assertEquals(1.3677463200292714, r.loss(), 1e-6);
        assertEquals(3 * -0.09438516719953635, r.dChosen()[0], 1e-7);
        assertEquals(-0.18276464465750122, r.dChosen()[1], 1e-7);
        // the per-pair losses and metrics are unweighted
        assertArrayEquals(new float[]{0.4740769841801067f, 1.3132616875182228f}, r.pairLosses(), 1e-7f);
    }

    @Test
    void ipoByHand() {
        // beta = 0.5: target 1 / (2 beta) = 1; pair 0: (1 - 1)^2 = 0; pair 1: (-2 - 1)^2 = 9; over 2 pairs 4.5
        PreferenceLosses.Result r = PreferenceLosses.compute(PreferenceLosses.Kind.IPO, PI_C, PI_R, REF_C, REF_R, 0.5,
                null, 2);
        assertEquals(4.5f, r.loss(), 1e-6f);
        assertArrayEquals(new float[]{0f, 9f}, r.pairLosses(), 1e-6f);
        // dl/dpi_c = 2 (h - 1) / 2: 0, -3
        assertArrayEquals(new float[]{0f, -3f}, r.dChosen(), 1e-6f);
        assertArrayEquals(new float[]{0f, 3f}, r.dRejected(), 1e-6f);
        assertArrayEquals(new float[]{0.5f, -1f}, r.margins());
        // beta = 0.25: target 2; pair 0: (1 - 2)^2 = 1, pair 1: (-2 - 2)^2 = 16; over 4 pairs 17 / 4
        PreferenceLosses.Result q = PreferenceLosses.compute(PreferenceLosses.Kind.IPO, PI_C, PI_R, REF_C, REF_R, 0.25,
                null, 4);
        assertEquals(4.25f, q.loss(), 1e-6f);
        assertArrayEquals(new float[]{-0.5f, -2f}, q.dChosen(), 1e-6f); // 2 (h - 2) / 4
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        Random rng = new Random(17);
        int n = 6;
        float[] pc = new float[n];
        float[] pr = new float[n];
        float[] rc = new float[n];
        float[] rr = new float[n];
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            rc[i] = (float) (-20 + rng.nextGaussian());
            rr[i] = (float) (-20 + rng.nextGaussian());
            pc[i] = rc[i] + (float) rng.nextGaussian();
            pr[i] = rr[i] + (float) rng.nextGaussian();
            w[i] = (float) (0.5 + rng.nextDouble());
        }
        for (PreferenceLosses.Kind kind : PreferenceLosses.Kind.values()) {
            PreferenceLosses.Result r = PreferenceLosses.compute(kind, pc, pr, rc, rr, 0.3, w, 9);
            FiniteDifferences.check(pc, r.dChosen(), x -> PreferenceLosses.compute(kind, x, pr, rc, rr, 0.3, w, 9).loss());
            FiniteDifferences.check(pr, r.dRejected(), x -> PreferenceLosses.compute(kind, pc, x, rc, rr, 0.3, w, 9).loss());
        }
    }

    @Test
    void dpoThroughTokenLogprobs() {
        // rows 0, 1: the chosen responses of pairs 0, 1; rows 2, 3: the rejected; the first step is a prompt token
        int[] mask = {0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1};
        float[] tokens = {-9f, -1.5f, -0.5f, -9f, -1f, -2f, -9f, -3f, -9f, -9f, -0.25f, -0.75f};
        float[] ref = {-9f, -1f, -1f, -9f, -1.5f, -1f, -9f, -2f, -9f, -9f, -1f, -0.5f};
        float[] refSums = SequenceLogprobs.sums(ref, mask, 4).sums();
        FiniteDifferences.Loss loss = x -> {
            float[] s = SequenceLogprobs.sums(x, mask, 4).sums();
            return PreferenceLosses.compute(PreferenceLosses.Kind.DPO, new float[]{s[0], s[1]}, new float[]{s[2], s[3]},
                    new float[]{refSums[0], refSums[1]}, new float[]{refSums[2], refSums[3]}, 0.2, null, 2).loss();
        };
        float[] s = SequenceLogprobs.sums(tokens, mask, 4).sums();
        PreferenceLosses.Result r = PreferenceLosses.compute(PreferenceLosses.Kind.DPO, new float[]{s[0], s[1]},
                new float[]{s[2], s[3]}, new float[]{refSums[0], refSums[1]}, new float[]{refSums[2], refSums[3]}, 0.2,
                null, 2);
        float[] dTokens = SequenceLogprobs.tokenGradients(
                new float[]{r.dChosen()[0], r.dChosen()[1], r.dRejected()[0], r.dRejected()[1]}, mask);
        FiniteDifferences.check(tokens, dTokens, loss);
    }

    @Test
    void rejectsBadInput() {
        assertThrows(IllegalArgumentException.class, () -> PreferenceLosses.compute(PreferenceLosses.Kind.DPO,
                new float[2], new float[1], new float[2], new float[2], 0.1, null, 2));
        assertThrows(IllegalArgumentException.class, () -> PreferenceLosses.compute(PreferenceLosses.Kind.IPO,
                new float[2], new float[2], new float[2], new float[2], 0.0, null, 2));
        assertThrows(IllegalArgumentException.class, () -> PreferenceLosses.Kind.of("kto"));
    }
}
