package org.sparkrlhf.jobs.algorithms;

/**
 * Sequence log-probabilities from per-token ones, and the way back: DPO, IPO and their
 * group-robust variants score a response by the sum of its tokens' log-probabilities, and a train
 * call back-propagates dLoss/d(sum) through the engine's per-token {@code backward(dLogprobs)}.
 * Arrays are flat [B, T] (row b, step t at b * T + t) with {@code mask} marking the response
 * tokens, as {@code ResponseBatch.responseMask()} lays them out in the forward's [B, T - 1]
 * next-token space.
 */
public final class SequenceLogprobs {
    private SequenceLogprobs() {
    }

    /** Per row: the sum of its masked tokens' log-probabilities (summed in double) and their count. */
    public record Sums(float[] sums, int[] counts) {
    }

    public static Sums sums(float[] tokenLogprobs, int[] mask, int rows) {
        TokenMask.sameLength(mask, tokenLogprobs);
        TokenMask.count(mask);
        if (rows <= 0 || mask.length % rows != 0) {
            throw new IllegalArgumentException(mask.length + " tokens do not split into " + rows + " rows");
        }
        int steps = mask.length / rows;
        float[] sums = new float[rows];
        int[] counts = new int[rows];
        for (int b = 0; b < rows; b++) {
            double sum = 0;
            for (int i = b * steps; i < (b + 1) * steps; i++) {
                if (mask[i] == 1) {
                    sum += tokenLogprobs[i];
                    counts[b]++;
                }
            }
            sums[b] = (float) sum;
        }
        return new Sums(sums, counts);
    }

    /**
     * dLoss/dLogprob per token from dLoss/d(row sum): each masked token of a row gets its row's
     * value (d sum / d logprob_t = 1), unmasked tokens 0.
     */
    public static float[] tokenGradients(float[] dSums, int[] mask) {
        TokenMask.count(mask);
        return Advantages.perToken(dSums, mask);
    }
}
