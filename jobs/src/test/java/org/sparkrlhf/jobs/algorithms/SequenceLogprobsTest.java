package org.sparkrlhf.jobs.algorithms;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class SequenceLogprobsTest {
    @Test
    void sumsAndTheirGradientsPerRow() {
        // row 0: prompt step, two response tokens, pad; row 1: two prompt steps, two response tokens
        int[] mask = {0, 1, 1, 0, 0, 0, 1, 1};
        float[] logprobs = {-9f, -1f, -2f, -9f, -9f, -9f, -0.5f, -0.25f};
        SequenceLogprobs.Sums s = SequenceLogprobs.sums(logprobs, mask, 2);
        assertArrayEquals(new float[]{-3f, -0.75f}, s.sums());
        assertArrayEquals(new int[]{2, 2}, s.counts());
        assertArrayEquals(new float[]{0f, 0.5f, 0.5f, 0f, 0f, 0f, -2f, -2f},
                SequenceLogprobs.tokenGradients(new float[]{0.5f, -2f}, mask));
        assertThrows(IllegalArgumentException.class, () -> SequenceLogprobs.sums(logprobs, mask, 3));
    }
}
