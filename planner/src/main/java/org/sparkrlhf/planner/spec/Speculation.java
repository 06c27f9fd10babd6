package org.sparkrlhf.planner.spec;

/**
 * Self-speculative decoding of the generate calls (S3D: the model with layers [skipFrom, skipTo)
 * skipped drafts {@code draftTokens} tokens per step, the whole model verifies them), with the
 * expected per-token acceptance {@code acceptance} (the run config's, or {@link #DEFAULT_ACCEPTANCE}).
 * The speedup model's formulas live here, once; gpu-exec's S3dSpeedup uses them:
 * <ul>
 *   <li>tokens per step, each draft token accepted independently with probability alpha (Leviathan
 *       et al.'s assumption): E = 1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha);</li>
 *   <li>the draft forward's cost as a fraction of a full forward over the same rows: the layers it
 *       runs, c = (L - skipped) / L (embedding and head neglected).</li>
 * </ul>
 */
public record Speculation(int skipFrom, int skipTo, int draftTokens, double acceptance) {
    /** A draft token accepted half the time: the planner's guess when the config has no measured rate. */
    public static final double DEFAULT_ACCEPTANCE = 0.5;

    /**
     * Examples a draft training step takes on each data-parallel rank (fewer when the rank has fewer
     * sequences): the draft has only [k, hidden] parameters, so a few dozen examples give a usable
     * gradient; the runtime's s3d_train and the cost model both use this figure.
     */
    public static final int EXAMPLES_PER_STEP = 32;

    public Speculation {
        if (skipFrom < 0 || skipTo < skipFrom) {
            throw new IllegalArgumentException("skip range [" + skipFrom + ", " + skipTo + ") must have 0 <= from <= to");
        }
        if (draftTokens < 1) {
            throw new IllegalArgumentException("a draft predicts at least 1 token, got " + draftTokens);
        }
        expectedTokensPerStep(acceptance, draftTokens);
    }

    public int skippedLayers() {
        return skipTo - skipFrom;
    }

    /** E for this draft length and acceptance. */
    public double expectedTokensPerStep() {
        return expectedTokensPerStep(acceptance, draftTokens);
    }

    /** c for a model of {@code layers} layers. */
    public double draftCostFraction(int layers) {
        return draftCostFraction(skippedLayers(), layers);
    }

    /** E: the expected tokens a step gains with k drafts each accepted with probability alpha. */
    public static double expectedTokensPerStep(double alpha, int k) {
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("acceptance rate must be in [0, 1], got " + alpha);
        }
        if (k < 0) {
            throw new IllegalArgumentException("draft length must be >= 0, got " + k);
        }
        if (alpha == 1) {
            return k + 1;
        }
        return (1 - Math.pow(alpha, k + 1)) / (1 - alpha);
    }

    /** c = (L - skipped) / L. */
    public static double draftCostFraction(int skipped, int layers) {
        if (skipped < 0 || skipped > layers) {
            throw new IllegalArgumentException(skipped + " skipped layers of a " + layers + "-layer model");
        }
        return (double) (layers - skipped) / layers;
    }
}
