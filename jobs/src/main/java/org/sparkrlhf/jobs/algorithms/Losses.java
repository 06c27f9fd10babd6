package org.sparkrlhf.jobs.algorithms;

/**
 * The training losses of PPO and GRPO over flat [B, T] per-token arrays, each with its gradient
 * per token, in the form {@code LlamaModel.backward} takes (as gpu-exec's {@code SftLoss}). Losses
 * are sums over the masked tokens divided by {@code denominator}: with micro-batches, pass the
 * whole batch's masked token count so that the accumulated gradients are the batch mean's.
 */
public final class Losses {
    private Losses() {
    }

    /**
     * A policy loss: its value, dLoss/dLogprob per token, the fraction of masked tokens where the
     * clip was active, and the mean over masked tokens of the k3 estimate of KL(old || new).
     */
    public record PolicyResult(float loss, float[] dLogprobs, float clipFraction, float approxKl) {
    }

    /** A value loss: its value, dLoss/dValue per token, and the fraction of tokens where the clip was active. */
    public record ValueResult(float loss, float[] dValues, float clipFraction) {
    }

    /**
     * PPO's clipped surrogate (Schulman et al. 2017): per token, with ratio = exp(logp - oldLogp),
     * max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)). Where the clipped term is the larger
     * (strictly), the gradient is 0; otherwise it is -A * ratio.
     */
    public static PolicyResult clippedPolicy(float[] logprobs, float[] oldLogprobs, float[] advantages, int[] mask,
                                             double clipRatio, int denominator) {
        return policy(logprobs, oldLogprobs, advantages, null, mask, clipRatio, 0.0, denominator);
    }

    /**
     * GRPO's loss: the clipped surrogate plus {@code klCoef} times the k3 estimate of KL(pi || ref)
     * per token (Shao et al. 2024).
     */
    public static PolicyResult grpoPolicy(float[] logprobs, float[] oldLogprobs, float[] advantages,
                                          float[] refLogprobs, int[] mask, double clipRatio, double klCoef,
                                          int denominator) {
        return policy(logprobs, oldLogprobs, advantages, refLogprobs, mask, clipRatio, klCoef, denominator);
    }

    private static PolicyResult policy(float[] logprobs, float[] oldLogprobs, float[] advantages, float[] refLogprobs,
                                       int[] mask, double clipRatio, double klCoef, int denominator) {
        TokenMask.sameLength(mask, logprobs, oldLogprobs, advantages);
        if (refLogprobs != null) {
            TokenMask.sameLength(mask, refLogprobs);
        }
        int n = TokenMask.count(mask);
        if (denominator <= 0) {
            throw new IllegalArgumentException("denominator must be > 0, got " + denominator);
        }
        double scale = 1.0 / denominator;
        float[] d = new float[mask.length];
        double sum = 0;
        int clipped = 0;
        double approxKl = 0;
        for (int i = 0; i < mask.length; i++) {
            if (mask[i] == 0) {
                continue;
            }
            double logRatio = (double) logprobs[i] - oldLogprobs[i];
            double ratio = Math.exp(logRatio);
            double a = advantages[i];
            double unclipped = -a * ratio;
            double clippedTerm = -a * Math.max(1 - clipRatio, Math.min(1 + clipRatio, ratio));
            double grad;
            if (clippedTerm > unclipped) {
                sum += clippedTerm;
                grad = 0;
                clipped++;
            } else {
                sum += unclipped;
                grad = -a * ratio;
            }
            if (refLogprobs != null && klCoef != 0) {
                sum += klCoef * KlEstimator.K3.value(logprobs[i], refLogprobs[i]);
                grad += klCoef * KlEstimator.K3.gradient(logprobs[i], refLogprobs[i]);
            }
            d[i] = (float) (grad * scale);
            approxKl += Math.expm1(-logRatio) + logRatio;
        }
        return new PolicyResult((float) (sum * scale), d, n == 0 ? 0f : (float) clipped / n,
                n == 0 ? 0f : (float) (approxKl / n));
    }

    /**
     * PPO's clipped value loss: per token, 0.5 * max((V - R)^2, (V_clip - R)^2) with V_clip =
     * oldV + clip(V - oldV, -eps, eps) and R the return, times {@code coef}.
     */
    public static ValueResult clippedValue(float[] values, float[] oldValues, float[] returns, int[] mask,
                                           double valueClip, double coef, int denominator) {
        TokenMask.sameLength(mask, values, oldValues, returns);
        int n = TokenMask.count(mask);
        if (denominator <= 0) {
            throw new IllegalArgumentException("denominator must be > 0, got " + denominator);
        }
        double scale = coef / denominator;
        float[] d = new float[mask.length];
        double sum = 0;
        int clipped = 0;
        for (int i = 0; i < mask.length; i++) {
            if (mask[i] == 0) {
                continue;
            }
            double v = values[i];
            double delta = v - oldValues[i];
            double vClipped = oldValues[i] + Math.max(-valueClip, Math.min(valueClip, delta));
            double errorUnclipped = v - returns[i];
            double errorClipped = vClipped - returns[i];
            double grad;
            if (errorClipped * errorClipped > errorUnclipped * errorUnclipped) {
                sum += 0.5 * errorClipped * errorClipped;
                // d vClipped / dV is 1 inside the clip range and 0 outside it
                grad = Math.abs(delta) < valueClip ? errorClipped : 0.0;
                clipped++;
            } else {
                sum += 0.5 * errorUnclipped * errorUnclipped;
                grad = errorUnclipped;
            }
            d[i] = (float) (grad * scale);
        }
        return new ValueResult((float) (sum * scale), d, n == 0 ? 0f : (float) clipped / n);
    }
}
