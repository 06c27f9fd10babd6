package org.sparkrlhf.jobs.algorithms;

/**
 * The reward model's training loss on preference pairs (Bradley-Terry, as in Ouyang et al. 2022):
 * per pair, with the model's scalar scores s_c of the chosen and s_r of the rejected response,
 * -log sigmoid(s_c - s_r). The loss is the sum over pairs divided by {@code denominator}: with
 * micro-batches, pass the whole batch's pair count so that the accumulated gradients are the batch
 * mean's.
 */
public final class BradleyTerry {
    private BradleyTerry() {
    }

    /**
     * The loss, dLoss/dScore of each pair's chosen and rejected response, the fraction of these
     * pairs scored the right way round (s_c > s_r), and the mean margin s_c - s_r over these pairs.
     */
    public record Result(float loss, float[] dChosen, float[] dRejected, float accuracy, float meanMargin) {
    }

    public static Result loss(float[] chosen, float[] rejected, int denominator) {
        if (chosen.length != rejected.length) {
            throw new IllegalArgumentException(chosen.length + " chosen and " + rejected.length + " rejected scores");
        }
        if (denominator <= 0) {
            throw new IllegalArgumentException("denominator must be > 0, got " + denominator);
        }
        int n = chosen.length;
        float[] dChosen = new float[n];
        float[] dRejected = new float[n];
        double sum = 0;
        double margins = 0;
        int correct = 0;
        for (int i = 0; i < n; i++) {
            double margin = (double) chosen[i] - rejected[i];
            sum += negLogSigmoid(margin);
            // d(-log sigmoid(m))/dm = -sigmoid(-m)
            double dMargin = -sigmoid(-margin) / denominator;
            dChosen[i] = (float) dMargin;
            dRejected[i] = (float) -dMargin;
            margins += margin;
            if (margin > 0) {
                correct++;
            }
        }
        return new Result((float) (sum / denominator), dChosen, dRejected, n == 0 ? 0f : (float) correct / n,
                n == 0 ? 0f : (float) (margins / n));
    }

    /** -log sigmoid(x) = softplus(-x), without overflow for large |x|. */
    static double negLogSigmoid(double x) {
        return Math.max(-x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
    }

    static double sigmoid(double x) {
        if (x >= 0) {
            return 1.0 / (1.0 + Math.exp(-x));
        }
        double e = Math.exp(x);
        return e / (1.0 + e);
    }
}
