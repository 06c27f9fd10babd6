package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class BradleyTerryTest {
    @Test
    void lossGradientsAndMetricsByHand() {
        // margins s_c - s_r: 1, 0, -2; -log sigmoid(m) = log(1 + e^-m):
        // log(1 + e^-1) = 0.31326168751822286, log 2 = 0.6931471805599453, log(1 + e^2) = 2.1269280110429727
        // loss over a denominator of 4 pairs (a fourth pair in another micro-batch): 3.1333368791211408 / 4
        BradleyTerry.Result r = BradleyTerry.loss(new float[]{2f, 0f, 1f}, new float[]{1f, 0f, 3f}, 4);
        assertEquals(0.7833342197802853, r.loss(), 1e-7);
        // dLoss/ds_c = -sigmoid(-m) / 4: sigmoid(-1) = 0.2689414213699951, sigmoid(0) = 0.5, sigmoid(2) = 0.8807970779778823
        assertArrayEquals(new float[]{-0.06723535534249878f, -0.125f, -0.22019926949447058f}, r.dChosen(), 1e-8f);
        assertArrayEquals(new float[]{0.06723535534249878f, 0.125f, 0.22019926949447058f}, r.dRejected(), 1e-8f);
        assertEquals(1f / 3, r.accuracy(), 1e-7f); // only m = 1 is > 0
        assertEquals(-1f / 3, r.meanMargin(), 1e-7f); // (1 + 0 - 2) / 3
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        Random rng = new Random(11);
        float[] c = new float[8];
        float[] rej = new float[8];
        for (int i = 0; i < 8; i++) {
            c[i] = (float) (rng.nextGaussian() * 3);
            rej[i] = (float) (rng.nextGaussian() * 3);
        }
        BradleyTerry.Result r = BradleyTerry.loss(c, rej, 8);
        FiniteDifferences.check(c, r.dChosen(), x -> BradleyTerry.loss(x, rej, 8).loss());
        FiniteDifferences.check(rej, r.dRejected(), x -> BradleyTerry.loss(c, x, 8).loss());
    }

    @Test
    void largeMarginsStayFinite() {
        BradleyTerry.Result r = BradleyTerry.loss(new float[]{1000f, -1000f}, new float[]{-1000f, 1000f}, 2);
        // pair 0 costs ~0, pair 1 costs 2000 (-log sigmoid(-2000) = 2000 + log(1 + e^-2000))
        assertEquals(1000.0, r.loss(), 1e-3);
        assertArrayEquals(new float[]{0f, -0.5f}, r.dChosen(), 1e-12f);
        assertThrows(IllegalArgumentException.class, () -> BradleyTerry.loss(new float[2], new float[3], 2));
    }
}
