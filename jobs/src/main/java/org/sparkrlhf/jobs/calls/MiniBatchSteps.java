package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainStep;

/**
 * The optimizer steps of a policy or value train call: {@code epochs} passes over the rank's
 * mini-batches ({@link MiniBatches}: the rank's part of each of the batch's mini-batches), one
 * data-parallel AdamW step per mini-batch. A mini-batch's loss is taken over the whole mini-batch's
 * token count (across ranks), so empty slices still join the step.
 */
final class MiniBatchSteps {
    /** One mini-batch's loss (already back-propagated), its clipped tokens, and a per-token sum the call reports. */
    record StepLoss(double loss, double clippedTokens, double extraSum) {
    }

    /** The loss of rows [from, to) over {@code denominator} tokens, with its backward done. */
    interface MiniBatchLoss {
        StepLoss apply(ResidentModel model, int from, int to, int denominator);
    }

    /** Mean loss over the steps, the last gradient norm, clipped and scored tokens, the extra sum, the steps. */
    record Totals(double meanLoss, float gradNorm, long clippedTokens, long tokens, double extraSum, int steps) {
    }

    private MiniBatchSteps() {
    }

    static Totals run(RankContext context, ResidentModel replica, int epochs, int[][] responses, MiniBatches batches,
                      MiniBatchLoss loss) {
        if (batches.start(batches.count()) != responses.length) {
            throw new IllegalArgumentException("mini-batches of " + batches.start(batches.count()) + " rows for a rank of "
                    + responses.length);
        }
        double lossSum = 0;
        float gradNorm = 0;
        long clipped = 0;
        long tokens = 0;
        double extra = 0;
        int steps = 0;
        for (int epoch = 0; epoch < epochs; epoch++) {
            for (int m = 0; m < batches.count(); m++) {
                int from = batches.start(m);
                int to = batches.start(m + 1);
                int denominator = batches.tokens()[m];
                double[] counts = new double[3];
                TrainStep.Result step = TrainStep.step(replica, context.dataGroup(), model -> {
                    if (from == to || denominator == 0) {
                        return 0.0;
                    }
                    StepLoss l = loss.apply(model, from, to, denominator);
                    counts[1] = scored(responses, from, to);
                    counts[0] = Math.round(l.clippedTokens());
                    counts[2] = l.extraSum();
                    return l.loss();
                });
                lossSum += step.loss();
                gradNorm = step.step().gradNorm();
                clipped += (long) counts[0];
                tokens += (long) counts[1];
                extra += counts[2];
                steps++;
            }
        }
        return new Totals(steps == 0 ? 0 : lossSum / steps, gradNorm, clipped, tokens, extra, steps);
    }

    /** Response tokens of rows [from, to). */
    static int scored(int[][] responses, int from, int to) {
        int n = 0;
        for (int b = from; b < to; b++) {
            n += responses[b].length;
        }
        return n;
    }
}
