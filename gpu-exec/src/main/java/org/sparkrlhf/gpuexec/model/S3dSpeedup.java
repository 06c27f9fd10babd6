package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.planner.spec.Speculation;

/**
 * The speedup model (its formulas are the planner's {@link Speculation}'s, which costs generate calls
 * with them) of self-speculative decoding with an S3D draft, per step of a sequence:
 * <ul>
 *   <li>tokens per step, with each draft token accepted independently with probability alpha
 *       (Leviathan et al.'s assumption): E = 1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha);</li>
 *   <li>cost of the draft forward as a fraction of a full forward over the same rows: the layers it
 *       runs, c = (L - skipped) / L (embedding and head neglected);</li>
 *   <li>a step costs one draft forward and one verification, both over k + 1 rows; with r the cost
 *       of a full forward over k + 1 rows relative to one plain decoding step (1 where decoding is
 *       bound by reading the weights, as on GPUs at small batch), speedup = E / (r (1 + c)).</li>
 * </ul>
 */
public final class S3dSpeedup {
    private S3dSpeedup() {
    }

    /** E: the expected tokens a step gains with k drafts each accepted with probability alpha. */
    public static double expectedTokensPerStep(double alpha, int k) {
        return Speculation.expectedTokensPerStep(alpha, k);
    }

    /** c: the draft forward's cost as a fraction of a full forward (the layers it runs). */
    public static double draftCostFraction(S3dConfig config, int layers) {
        config.check(layers);
        return Speculation.draftCostFraction(config.skippedLayers(), layers);
    }

    /** E / (r (1 + c)). */
    public static double predictedSpeedup(double alpha, S3dConfig config, int layers, double verifyCostRatio) {
        if (!(verifyCostRatio > 0)) throw new IllegalArgumentException("verify cost ratio must be positive, got " + verifyCostRatio);
        return expectedTokensPerStep(alpha, config.draftTokens()) / (verifyCostRatio * (1 + draftCostFraction(config, layers)));
    }
}
