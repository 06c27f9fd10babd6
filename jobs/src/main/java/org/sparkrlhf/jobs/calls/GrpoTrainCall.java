package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;
import java.util.Arrays;

/**
 * The actor_train call of GRPO on a data-parallel layout: for each epoch and each mini-batch, one
 * optimizer step on the clipped GRPO loss (clipped surrogate on the sequence's group-normalised
 * advantage plus klCoef times the k3 KL to the reference, per response token), its gradient
 * flowing through the model's backward from dLoss/dLogprob. Rank r's mini-batch m is rows
 * [m * n / M, (m + 1) * n / M) of its n rows; each mini-batch's loss is divided by that
 * mini-batch's response token count over all ranks ({@code miniBatchTokens[m]}), so the summed
 * gradient is the mini-batch's token mean. A rank with no rows in a mini-batch still takes part in
 * the gradient sum.
 */
public final class GrpoTrainCall implements RankFunction<GrpoTrainCall.Slice, GrpoTrainCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int[][] responses, float[][] oldLogprobs, float[][] refLogprobs,
                        float[] advantages, double clipRatio, double klCoef, int epochs, int[] miniBatchTokens,
                        int padId) implements Serializable {
    }

    /**
     * The mean over steps of the step's loss (summed over ranks), the last step's gradient norm,
     * this rank's clipped and scored token counts (over all steps), and the new version.
     */
    public record Result(double loss, float gradNorm, long clippedTokens, long tokens, int steps, long version)
            implements Serializable {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        String layout = context.layoutKey();
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int rows = slice.prompts().length;
        int miniBatches = slice.miniBatchTokens().length;
        double lossSum = 0;
        float gradNorm = 0;
        long clipped = 0;
        long tokens = 0;
        int steps = 0;
        for (int epoch = 0; epoch < slice.epochs(); epoch++) {
            for (int m = 0; m < miniBatches; m++) {
                int from = m * rows / miniBatches;
                int to = (m + 1) * rows / miniBatches;
                int denominator = slice.miniBatchTokens()[m];
                long[] counts = new long[2];
                TrainStep.Result step = TrainStep.step(replica, context.dataGroup(), model -> {
                    if (from == to || denominator == 0) {
                        return 0.0;
                    }
                    Losses.PolicyResult loss = miniBatchLoss(model, slice, from, to, denominator);
                    int scored = 0;
                    for (int b = from; b < to; b++) {
                        scored += slice.responses()[b].length;
                    }
                    counts[0] = Math.round(loss.clipFraction() * (double) scored);
                    counts[1] = scored;
                    return loss.loss();
                });
                lossSum += step.loss();
                gradNorm = step.step().gradNorm();
                clipped += counts[0];
                tokens += counts[1];
                steps++;
            }
        }
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(steps == 0 ? 0 : lossSum / steps, gradNorm, clipped, tokens, steps, replica.version());
    }

    /** Forward over rows [from, to), the GRPO loss, and its backward into the model's gradients. */
    private static Losses.PolicyResult miniBatchLoss(ResidentModel model, Slice slice, int from, int to, int denominator) {
        int[][] prompts = Arrays.copyOfRange(slice.prompts(), from, to);
        int[][] responses = Arrays.copyOfRange(slice.responses(), from, to);
        ResponseBatch batch = ResponseBatch.of(prompts, responses, slice.padId());
        TokenStats stats = model.forward(batch.batch(), false);
        float[] old = batch.spread(Arrays.copyOfRange(slice.oldLogprobs(), from, to));
        float[] ref = batch.spread(Arrays.copyOfRange(slice.refLogprobs(), from, to));
        float[][] perRow = new float[to - from][];
        for (int b = from; b < to; b++) {
            perRow[b - from] = new float[responses[b - from].length];
            Arrays.fill(perRow[b - from], slice.advantages()[b]);
        }
        float[] advantages = batch.spread(perRow);
        Losses.PolicyResult loss = Losses.grpoPolicy(stats.logprobs(), old, advantages, ref, batch.responseMask(),
                slice.clipRatio(), slice.klCoef(), denominator);
        model.backward(loss.dLogprobs(), null);
        return loss;
    }
}
