package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each loss's gradient against central finite differences of its value (in double). */
class LossesTest {
    private static final int N = 12;

    private static float[] random(Random rng, double scale) {
        float[] x = new float[N];
        for (int i = 0; i < N; i++) {
            x[i] = (float) (rng.nextGaussian() * scale);
        }
        return x;
    }

    private static final int[] MASK = {0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0};

    @Test
    void clippedPolicyGradientMatchesFiniteDifferences() {
        Random rng = new Random(3);
        float[] old = random(rng, 1.0);
        float[] logp = new float[N];
        for (int i = 0; i < N; i++) {
            logp[i] = old[i] + (float) (rng.nextGaussian() * 0.3); // some ratios outside [0.8, 1.2]
        }
        float[] adv = random(rng, 1.0);
        Losses.PolicyResult r = Losses.clippedPolicy(logp, old, adv, MASK, 0.2, 9);
        assertTrue(r.clipFraction() > 0 && r.clipFraction() < 1, "both branches are exercised: " + r.clipFraction());
        checkGradient(logp, r.dLogprobs(), x -> Losses.clippedPolicy(x, old, adv, MASK, 0.2, 9).loss());
    }

    @Test
    void grpoPolicyGradientIncludesTheK3Term() {
        Random rng = new Random(5);
        float[] old = random(rng, 1.0);
        float[] logp = new float[N];
        for (int i = 0; i < N; i++) {
            logp[i] = old[i] + (float) (rng.nextGaussian() * 0.05);
        }
        float[] ref = random(rng, 1.0);
        float[] adv = random(rng, 1.0);
        Losses.PolicyResult r = Losses.grpoPolicy(logp, old, adv, ref, MASK, 0.2, 0.04, 9);
        checkGradient(logp, r.dLogprobs(), x -> Losses.grpoPolicy(x, old, adv, ref, MASK, 0.2, 0.04, 9).loss());
    }

    @Test
    void policyLossAtRatioOneIsMinusTheMeanAdvantage() {
        float[] lp = {-1f, -2f, -3f};
        Losses.PolicyResult r = Losses.clippedPolicy(lp, lp, new float[]{1f, 2f, 4f}, new int[]{1, 1, 0}, 0.2, 2);
        assertEquals(-1.5f, r.loss(), 1e-7f);
        assertEquals(-0.5f, r.dLogprobs()[0], 1e-7f);
        assertEquals(-1.0f, r.dLogprobs()[1], 1e-7f);
        assertEquals(0f, r.dLogprobs()[2]);
        assertEquals(0f, r.approxKl(), 1e-7f);
    }

    @Test
    void clippedValueGradientMatchesFiniteDifferences() {
        Random rng = new Random(7);
        float[] old = random(rng, 1.0);
        float[] values = new float[N];
        for (int i = 0; i < N; i++) {
            values[i] = old[i] + (float) (rng.nextGaussian() * 0.4);
        }
        float[] returns = random(rng, 1.0);
        Losses.ValueResult r = Losses.clippedValue(values, old, returns, MASK, 0.2, 0.5, 9);
        assertTrue(r.clipFraction() > 0 && r.clipFraction() < 1, "both branches are exercised: " + r.clipFraction());
        checkGradient(values, r.dValues(), x -> Losses.clippedValue(x, old, returns, MASK, 0.2, 0.5, 9).loss());
    }

    @Test
    void klEstimators() {
        assertEquals(0.5, KlEstimator.K1.value(-1.0, -1.5), 1e-12);
        // k3 with r = ref - logp = -0.5: exp(-0.5) - 1 + 0.5
        assertEquals(Math.exp(-0.5) - 0.5, KlEstimator.K3.value(-1.0, -1.5), 1e-12);
        for (double lp = -3; lp <= 0; lp += 0.25) {
            assertTrue(KlEstimator.K3.value(lp, -1.2) >= 0);
            double h = 1e-6;
            double fd = (KlEstimator.K3.value(lp + h, -1.2) - KlEstimator.K3.value(lp - h, -1.2)) / (2 * h);
            assertEquals(fd, KlEstimator.K3.gradient(lp, -1.2), 1e-6);
        }
    }

    @Test
    void adaptiveKlController() {
        KlController c = new KlController(true, 0.1, 6.0, 10000);
        c.update(12.0, 100); // error clipped to 0.2
        assertEquals(0.1 * (1 + 0.2 * 100 / 10000.0), c.coef(), 1e-15);
        c.update(4.5, 200); // error -0.25 clipped to -0.2
        assertEquals(0.1 * 1.002 * (1 - 0.2 * 200 / 10000.0), c.coef(), 1e-15);
        KlController fixed = new KlController(false, 0.05, 0, 0);
        fixed.update(100, 100);
        assertEquals(0.05, fixed.coef());
    }

    interface Loss {
        float of(float[] x);
    }

    /** Central differences on every token; skips tokens sitting on a clip boundary (not differentiable). */
    private static void checkGradient(float[] x, float[] analytic, Loss loss) {
        float h = 1e-3f;
        for (int i = 0; i < x.length; i++) {
            float[] plus = x.clone();
            float[] minus = x.clone();
            plus[i] += h;
            minus[i] -= h;
            double fd = ((double) loss.of(plus) - loss.of(minus)) / (2 * h);
            assertEquals(fd, analytic[i], 2e-3, "token " + i);
        }
    }
}
