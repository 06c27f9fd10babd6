package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

class EstimateCheckTest {
    @Test
    void meanFromTheSecondIterationAgainstTheEstimate() {
        Map<String, Double> est = new LinkedHashMap<>();
        est.put("actor_gen", 0.6);
        est.put(EstimateCheck.ITERATION, 2.0);
        EstimateCheck c = new EstimateCheck(est, 1);
        assertEquals("", c.line());
        c.add(1, Map.of("actor_gen", 9.0, EstimateCheck.ITERATION, 20.0)); // the first iteration is not counted
        c.add(2, Map.of("actor_gen", 0.1, EstimateCheck.ITERATION, 1.0, "reward_fn", 0.01));
        c.add(3, Map.of("actor_gen", 0.2, EstimateCheck.ITERATION, 3.0));
        // means 0.15 s and 2.0 s: ratios 0.6 / 0.15 = 4 and 2.0 / 2.0 = 1
        assertEquals("estimated/measured (mean of 2 iterations from 2 on): actor_gen 0.600/0.150 s = 4.00, "
                + "iteration 2.000/2.000 s = 1.00", c.line());
    }

    @Test
    void fromFourCountedIterationsTheLastHalfIsShownBeside() {
        Map<String, Double> est = new LinkedHashMap<>();
        est.put("ref_inf", 0.3);
        EstimateCheck c = new EstimateCheck(est, 1);
        // warming up, then steady: 0.9, 0.6, 0.3, 0.3, 0.3 from iteration 2 on
        double[] s = {0.9, 0.6, 0.3, 0.3, 0.3};
        for (int i = 0; i < s.length; i++) {
            c.add(i + 2, Map.of("ref_inf", s[i]));
        }
        // all five: mean 0.48; the last two (iterations 5 and 6): 0.3
        assertEquals("estimated/measured (mean of 5 iterations from 2 on | mean and median of the last 2, from 5): "
                + "ref_inf 0.300/0.480 s = 0.63 | 0.300 s = 1.00, median 0.300 s = 1.00", c.line());
    }

    @Test
    void theLastHalfsMedianLeavesASlowCallOut() {
        Map<String, Double> est = new LinkedHashMap<>();
        est.put("ref_inf", 0.02);
        EstimateCheck c = new EstimateCheck(est, 1);
        // the last three of six: 0.02, 0.30 (a call that waited for a table's commit), 0.02
        double[] s = {0.05, 0.03, 0.02, 0.02, 0.30, 0.02};
        for (int i = 0; i < s.length; i++) {
            c.add(i + 2, Map.of("ref_inf", s[i]));
        }
        // all six: mean 0.44 / 6; the last three: mean 0.34 / 3, median 0.02
        assertEquals("estimated/measured (mean of 6 iterations from 2 on | mean and median of the last 3, from 5): "
                + "ref_inf 0.020/0.073 s = 0.27 | 0.113 s = 0.18, median 0.020 s = 1.00", c.line());
    }
}
