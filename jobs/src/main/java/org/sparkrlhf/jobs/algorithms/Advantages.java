package org.sparkrlhf.jobs.algorithms;

/**
 * Advantages and returns for PPO, GRPO, RLOO and ReMax: per sequence for the group baselines, else
 * over flat [B, T] per-token arrays (row b, step t at b * T + t) where {@code mask} marks the
 * response tokens. Sums run in double.
 */
public final class Advantages {
    private Advantages() {
    }

    /** Advantages and returns (value targets) of generalized advantage estimation. */
    public record Gae(float[] advantages, float[] returns) {
    }

    /**
     * GAE (Schulman et al. 2016) per row, over the row's masked steps in order: delta_t = r_t +
     * gamma * V_next - V_t, A_t = delta_t + gamma * lambda * A_next, with V and A after the last
     * response token equal to 0; returns = A + V. Unmasked steps get 0.
     */
    public static Gae gae(float[] rewards, float[] values, int[] mask, int rows, double gamma, double lambda) {
        TokenMask.sameLength(mask, rewards, values);
        TokenMask.count(mask);
        if (rows <= 0 || mask.length % rows != 0) {
            throw new IllegalArgumentException(mask.length + " tokens do not split into " + rows + " rows");
        }
        int steps = mask.length / rows;
        float[] advantages = new float[mask.length];
        float[] returns = new float[mask.length];
        for (int b = 0; b < rows; b++) {
            double nextValue = 0;
            double nextAdvantage = 0;
            for (int t = steps - 1; t >= 0; t--) {
                int i = b * steps + t;
                if (mask[i] == 0) {
                    continue;
                }
                double delta = rewards[i] + gamma * nextValue - values[i];
                double advantage = delta + gamma * lambda * nextAdvantage;
                advantages[i] = (float) advantage;
                returns[i] = (float) (advantage + values[i]);
                nextValue = values[i];
                nextAdvantage = advantage;
            }
        }
        return new Gae(advantages, returns);
    }

    /**
     * Whitens the masked values in place: (x - mean) / sqrt(var + 1e-8), with the unbiased variance
     * over the masked tokens; unmasked entries become 0. Needs at least two masked tokens.
     */
    public static void whiten(float[] x, int[] mask) {
        TokenMask.sameLength(mask, x);
        int n = TokenMask.count(mask);
        if (n < 2) {
            throw new IllegalArgumentException("whitening needs at least 2 tokens, got " + n);
        }
        double sum = 0;
        for (int i = 0; i < x.length; i++) {
            sum += mask[i] * (double) x[i];
        }
        double mean = sum / n;
        double squares = 0;
        for (int i = 0; i < x.length; i++) {
            if (mask[i] == 1) {
                double d = x[i] - mean;
                squares += d * d;
            }
        }
        double scale = 1.0 / Math.sqrt(squares / (n - 1) + 1e-8);
        for (int i = 0; i < x.length; i++) {
            x[i] = mask[i] == 1 ? (float) ((x[i] - mean) * scale) : 0f;
        }
    }

    /**
     * GRPO's group-normalised advantages (Shao et al. 2024, DeepSeekMath): {@code scores} holds
     * consecutive groups of {@code groupSize} samples of one prompt; each sample's advantage is
     * (score - group mean) / (group std + 1e-4), with the unbiased std. A group whose samples all
     * scored the same gets advantage 0 (nothing to learn from it).
     */
    public static float[] groupNormalised(float[] scores, int groupSize) {
        if (groupSize < 2 || scores.length % groupSize != 0) {
            throw new IllegalArgumentException(scores.length + " scores do not form groups of " + groupSize);
        }
        float[] advantages = new float[scores.length];
        for (int g = 0; g < scores.length; g += groupSize) {
            double sum = 0;
            for (int i = g; i < g + groupSize; i++) {
                sum += scores[i];
            }
            double mean = sum / groupSize;
            double squares = 0;
            for (int i = g; i < g + groupSize; i++) {
                squares += (scores[i] - mean) * (scores[i] - mean);
            }
            double std = Math.sqrt(squares / (groupSize - 1));
            for (int i = g; i < g + groupSize; i++) {
                advantages[i] = (float) ((scores[i] - mean) / (std + 1e-4));
            }
        }
        return advantages;
    }

    /**
     * RLOO's advantages (Ahmadian et al. 2024, "Back to Basics", after Kool et al. 2019): {@code
     * rewards} holds consecutive groups of {@code k} samples of one prompt; each sample's advantage
     * is its reward less the mean reward of the group's other k - 1 samples (its leave-one-out
     * baseline, which does not depend on the sample itself and so keeps the gradient unbiased).
     */
    public static float[] rloo(float[] rewards, int k) {
        if (k < 2 || rewards.length % k != 0) {
            throw new IllegalArgumentException(rewards.length + " rewards do not form groups of " + k + " (k >= 2)");
        }
        float[] advantages = new float[rewards.length];
        for (int g = 0; g < rewards.length; g += k) {
            double sum = 0;
            for (int i = g; i < g + k; i++) {
                sum += rewards[i];
            }
            for (int i = g; i < g + k; i++) {
                advantages[i] = (float) (rewards[i] - (sum - rewards[i]) / (k - 1));
            }
        }
        return advantages;
    }

    /**
     * ReMax's advantages (Li et al. 2023): {@code rewards} holds consecutive groups of {@code k}
     * samples of one prompt, {@code greedyRewards} one reward per prompt, that of its greedy
     * (argmax-decoded) response; each sample's advantage is its reward less its prompt's greedy reward.
     */
    public static float[] remax(float[] rewards, float[] greedyRewards, int k) {
        if (k < 1 || rewards.length != (long) greedyRewards.length * k) {
            throw new IllegalArgumentException(rewards.length + " rewards are not " + k + " samples for each of "
                    + greedyRewards.length + " greedy rewards");
        }
        float[] advantages = new float[rewards.length];
        for (int i = 0; i < rewards.length; i++) {
            advantages[i] = (float) ((double) rewards[i] - greedyRewards[i / k]);
        }
        return advantages;
    }

    /** Spreads one value per row over the row's masked tokens (GRPO: a sequence's advantage on each of its tokens). */
    public static float[] perToken(float[] perRow, int[] mask) {
        if (perRow.length == 0 || mask.length % perRow.length != 0) {
            throw new IllegalArgumentException(mask.length + " tokens do not split into " + perRow.length + " rows");
        }
        int steps = mask.length / perRow.length;
        float[] out = new float[mask.length];
        for (int i = 0; i < mask.length; i++) {
            out[i] = mask[i] == 1 ? perRow[i / steps] : 0f;
        }
        return out;
    }

    /**
     * PPO's per-token rewards: -klCoef * KL_t on every response token (KL by {@code estimator}),
     * plus the sequence's score, clipped to [-clip, clip], on its last response token.
     */
    public static float[] ppoRewards(float[] scores, float[] logprobs, float[] refLogprobs, int[] mask,
                                     double klCoef, KlEstimator estimator, double clip) {
        TokenMask.sameLength(mask, logprobs, refLogprobs);
        TokenMask.count(mask);
        int rows = scores.length;
        if (rows == 0 || mask.length % rows != 0) {
            throw new IllegalArgumentException(mask.length + " tokens do not split into " + rows + " rows");
        }
        int steps = mask.length / rows;
        float[] rewards = new float[mask.length];
        for (int b = 0; b < rows; b++) {
            int last = -1;
            for (int t = 0; t < steps; t++) {
                int i = b * steps + t;
                if (mask[i] == 1) {
                    rewards[i] = (float) (-klCoef * estimator.value(logprobs[i], refLogprobs[i]));
                    last = i;
                }
            }
            if (last < 0) {
                throw new IllegalArgumentException("row " + b + " has no response token");
            }
            rewards[last] += (float) Math.max(-clip, Math.min(clip, scores[b]));
        }
        return rewards;
    }
}
