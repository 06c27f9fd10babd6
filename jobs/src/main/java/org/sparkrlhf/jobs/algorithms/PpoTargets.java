package org.sparkrlhf.jobs.algorithms;

/**
 * The driver's step of a PPO iteration between the inference calls and the training calls, over
 * ragged per-row response arrays (row b has one entry per response token): per-token rewards (the
 * KL penalty on every token plus the clipped score on the last, {@link Advantages#ppoRewards}),
 * GAE advantages and returns ({@link Advantages#gae}), and, when asked, advantages whitened over
 * the whole batch's tokens (returns are taken before whitening, as the value targets).
 */
public final class PpoTargets {
    private PpoTargets() {
    }

    /**
     * Per row and response token: the shaped rewards, the advantages, the returns; per row: the sum
     * over its tokens of the KL estimate (the sequence's KL, what an adaptive controller tracks).
     */
    public record Result(float[][] tokenRewards, float[][] advantages, float[][] returns, double[] sequenceKl) {
    }

    public static Result compute(float[] scores, float[][] logprobs, float[][] refLogprobs, float[][] values,
                                 double klCoef, KlEstimator estimator, double clip, double gamma, double lambda,
                                 boolean whiten) {
        int rows = scores.length;
        if (rows == 0 || logprobs.length != rows || refLogprobs.length != rows || values.length != rows) {
            throw new IllegalArgumentException("scores, logprobs, ref logprobs and values must have the same rows (> 0): "
                    + rows + ", " + logprobs.length + ", " + refLogprobs.length + ", " + values.length);
        }
        int[] lengths = new int[rows];
        int width = 0;
        for (int b = 0; b < rows; b++) {
            lengths[b] = logprobs[b].length;
            if (refLogprobs[b].length != lengths[b] || values[b].length != lengths[b]) {
                throw new IllegalArgumentException("row " + b + ": " + lengths[b] + " logprobs, " + refLogprobs[b].length
                        + " ref logprobs and " + values[b].length + " values");
            }
            width = Math.max(width, lengths[b]);
        }
        int[] mask = new int[rows * width];
        for (int b = 0; b < rows; b++) {
            for (int t = 0; t < lengths[b]; t++) {
                mask[b * width + t] = 1;
            }
        }
        float[] logp = pack(logprobs, width);
        float[] ref = pack(refLogprobs, width);
        float[] rewards = Advantages.ppoRewards(scores, logp, ref, mask, klCoef, estimator, clip);
        Advantages.Gae gae = Advantages.gae(rewards, pack(values, width), mask, rows, gamma, lambda);
        float[] advantages = gae.advantages();
        if (whiten && TokenMask.count(mask) >= 2) {
            Advantages.whiten(advantages, mask);
        }
        double[] sequenceKl = new double[rows];
        for (int b = 0; b < rows; b++) {
            for (int t = 0; t < lengths[b]; t++) {
                sequenceKl[b] += estimator.value(logprobs[b][t], refLogprobs[b][t]);
            }
        }
        return new Result(unpack(rewards, lengths, width), unpack(advantages, lengths, width),
                unpack(gae.returns(), lengths, width), sequenceKl);
    }

    /** Ragged rows into a [B, width] array, 0 past each row's end. */
    static float[] pack(float[][] rows, int width) {
        float[] out = new float[rows.length * width];
        for (int b = 0; b < rows.length; b++) {
            System.arraycopy(rows[b], 0, out, b * width, rows[b].length);
        }
        return out;
    }

    static float[][] unpack(float[] flat, int[] lengths, int width) {
        float[][] out = new float[lengths.length][];
        for (int b = 0; b < lengths.length; b++) {
            out[b] = new float[lengths[b]];
            System.arraycopy(flat, b * width, out[b], 0, lengths[b]);
        }
        return out;
    }
}
