package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class SftLossTest {
    @Test
    void completionMaskDropsThePromptsPredictions() {
        // row 0: bos p p a eos; row 1: bos p a eos pad
        Batch batch = Batch.rightPadded(new int[][]{{1, 7, 8, 9, 2}, {1, 7, 9, 2}}, 0);
        int[] mask = SftLoss.completionMask(batch, new int[]{3, 2});
        // targets t = 0..3 predict tokens 1..4; row 0 trains on tokens 3, 4; row 1 on tokens 2, 3
        assertArrayEquals(new int[]{0, 0, 1, 1, 0, 1, 1, 0}, mask);
        assertArrayEquals(batch.targetMask(), SftLoss.completionMask(batch, new int[]{1, 1}));
    }

    @Test
    void lossIsTheMeanNegativeLogprobOverTheMask() {
        float[] logprobs = {-1f, -2f, -3f, -4f};
        TokenStats stats = new TokenStats(1, 4, logprobs, null);
        SftLoss.Result r = SftLoss.of(new int[]{0, 1, 1, 0}, stats, 2);
        assertEquals(2.5f, r.loss(), 1e-6f);
        assertEquals(2, r.tokens());
        assertArrayEquals(new float[]{0f, -0.5f, -0.5f, 0f}, r.dLogprobs(), 0f);
    }
}
