package org.sparkrlhf.jobs.algorithms;

/**
 * Per-token estimators of KL(pi || pi_ref) from the sampled token's log-probabilities under the
 * policy ({@code logp}) and the reference ({@code refLogp}), with r = refLogp - logp (Schulman,
 * "Approximating KL divergence", 2020):
 * <ul>
 *   <li>k1 = -r = logp - refLogp: unbiased, can be negative (PPO's reward penalty);</li>
 *   <li>k3 = exp(r) - 1 - r: unbiased and never negative (GRPO's loss term).</li>
 * </ul>
 */
public enum KlEstimator {
    K1, K3;

    public static KlEstimator of(String name) {
        return switch (name) {
            case "k1" -> K1;
            case "k3" -> K3;
            default -> throw new IllegalArgumentException("unknown KL estimator '" + name + "' (k1 or k3)");
        };
    }

    public double value(double logp, double refLogp) {
        double r = refLogp - logp;
        return this == K1 ? -r : Math.expm1(r) - r;
    }

    /** d value / d logp (the reference is fixed). */
    public double gradient(double logp, double refLogp) {
        double r = refLogp - logp;
        return this == K1 ? 1.0 : -Math.expm1(r);
    }
}
