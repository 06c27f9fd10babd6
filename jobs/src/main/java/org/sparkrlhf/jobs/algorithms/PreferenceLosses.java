package org.sparkrlhf.jobs.algorithms;

/**
 * The losses of direct preference optimisation from preference pairs, per pair from the summed
 * response log-probabilities (see {@link SequenceLogprobs}) of the chosen and the rejected response
 * under the policy (pi_c, pi_r) and the frozen reference (ref_c, ref_r), with the log-ratio
 * difference h = (pi_c - ref_c) - (pi_r - ref_r):
 * <ul>
 *   <li>DPO (Rafailov et al. 2023, Eq. 7): -log sigmoid(beta * h);</li>
 *   <li>IPO (Azar et al. 2023, Eq. 17): (h - 1 / (2 * beta))^2, beta being the paper's tau.</li>
 * </ul>
 * IPO takes h from <em>summed</em> log-probabilities, not per-token averages: so do the IPO and
 * GR-IPO runs of Ramesh et al. 2024 (their code, src/loss_utils.py of
 * github.com/rsshyam/Group-robust-preference-optimization, calls {@code _get_batch_logps} with
 * {@code average_log_prob=False} for both losses).
 * <p>
 * Each pair's loss may be weighted (the group-robust variants GR-DPO and GR-IPO weight a pair by its
 * group's weight, {@link GroupWeights#pairWeights}); the loss is the weighted sum over pairs divided
 * by {@code denominator}: with micro-batches, pass the whole batch's pair count so that the
 * accumulated gradients are the batch's. The metrics follow the DPO code: the implicit reward margin
 * beta * h per pair and the accuracy (margin > 0), for both losses.
 */
public final class PreferenceLosses {
    private PreferenceLosses() {
    }

    public enum Kind {
        DPO, IPO;

        public static Kind of(String name) {
            return switch (name) {
                case "dpo" -> DPO;
                case "ipo" -> IPO;
                default -> throw new IllegalArgumentException("unknown preference loss '" + name + "' (dpo or ipo)");
            };
        }
    }

    /**
     * The (weighted) loss over {@code denominator} pairs; per pair dLoss/d pi_c and dLoss/d pi_r
     * (the reference is fixed), the unweighted loss (what the group weights are updated from), the
     * implicit reward margin beta * h; and the fraction of these pairs with margin > 0.
     */
    public record Result(float loss, float[] dChosen, float[] dRejected, float[] pairLosses, float[] margins,
                         float accuracy) {
    }

    /** {@code weights} may be null (every pair weighs 1). */
    public static Result compute(Kind kind, float[] policyChosen, float[] policyRejected, float[] refChosen,
                                 float[] refRejected, double beta, float[] weights, int denominator) {
        int n = policyChosen.length;
        if (policyRejected.length != n || refChosen.length != n || refRejected.length != n
                || (weights != null && weights.length != n)) {
            throw new IllegalArgumentException("per-pair arrays of different lengths: " + n + " policy chosen, "
                    + policyRejected.length + " policy rejected, " + refChosen.length + " reference chosen, "
                    + refRejected.length + " reference rejected" + (weights == null ? "" : ", " + weights.length + " weights"));
        }
        if (!(beta > 0)) {
            throw new IllegalArgumentException("beta must be > 0, got " + beta);
        }
        if (denominator <= 0) {
            throw new IllegalArgumentException("denominator must be > 0, got " + denominator);
        }
        float[] dChosen = new float[n];
        float[] dRejected = new float[n];
        float[] pairLosses = new float[n];
        float[] margins = new float[n];
        double sum = 0;
        int correct = 0;
        for (int i = 0; i < n; i++) {
            double h = ((double) policyChosen[i] - refChosen[i]) - ((double) policyRejected[i] - refRejected[i]);
            double loss;
            double dh;
            if (kind == Kind.DPO) {
                loss = BradleyTerry.negLogSigmoid(beta * h);
                dh = -beta * BradleyTerry.sigmoid(-beta * h);
            } else {
                double e = h - 1.0 / (2.0 * beta);
                loss = e * e;
                dh = 2.0 * e;
            }
            double w = weights == null ? 1.0 : weights[i];
            sum += w * loss;
            // h = pi_c - pi_r + const: d h / d pi_c = 1, d h / d pi_r = -1
            dChosen[i] = (float) (w * dh / denominator);
            dRejected[i] = (float) (-w * dh / denominator);
            pairLosses[i] = (float) loss;
            margins[i] = (float) (beta * h);
            if (beta * h > 0) {
                correct++;
            }
        }
        return new Result((float) (sum / denominator), dChosen, dRejected, pairLosses, margins,
                n == 0 ? 0f : (float) correct / n);
    }
}
