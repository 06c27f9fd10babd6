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
 * The actor_train call of PPO on its placement (data-parallel replicas, or tensor / pipeline shards
 * of each replica, every rank of a replica on the replica's rows): for each epoch and each mini-batch, one
 * optimizer step on the clipped surrogate (Schulman et al. 2017) with per-token advantages (the
 * KL penalty is already in the rewards the advantages came from). Rank r's mini-batch m is rows
 * [m * n / M, (m + 1) * n / M) of its n rows; each mini-batch's loss is divided by that
 * mini-batch's response token count over all ranks ({@code miniBatchTokens[m]}), so the summed
 * gradient is the mini-batch's token mean. A rank with no rows in a mini-batch still takes part in
 * the gradient sum.
 */
public final class PpoActorTrainCall implements RankFunction<PpoActorTrainCall.Slice, PpoActorTrainCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int[][] responses, float[][] oldLogprobs, float[][] advantages,
                        double clipRatio, int epochs, int[] miniBatchTokens, int padId) implements Serializable {
    }

    /**
     * The mean over steps of the step's loss (summed over ranks), the last step's gradient norm,
     * this rank's clipped and scored token counts and its summed k3 estimate of KL(old || new)
     * over the scored tokens (over all steps), and the new version.
     */
    public record Result(double loss, float gradNorm, long clippedTokens, long tokens, double approxKlSum, int steps,
                         long version) implements Serializable {
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
        double approxKl = 0;
        int steps = 0;
        for (int epoch = 0; epoch < slice.epochs(); epoch++) {
            for (int m = 0; m < miniBatches; m++) {
                int from = m * rows / miniBatches;
                int to = (m + 1) * rows / miniBatches;
                int denominator = slice.miniBatchTokens()[m];
                double[] counts = new double[3];
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
                    counts[2] = loss.approxKl() * (double) scored;
                    return loss.loss();
                });
                lossSum += step.loss();
                gradNorm = step.step().gradNorm();
                clipped += (long) counts[0];
                tokens += (long) counts[1];
                approxKl += counts[2];
                steps++;
            }
        }
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(steps == 0 ? 0 : lossSum / steps, gradNorm, clipped, tokens, approxKl, steps, replica.version());
    }

    /** Forward over rows [from, to), the clipped surrogate, and its backward into the model's gradients. */
    private static Losses.PolicyResult miniBatchLoss(ResidentModel model, Slice slice, int from, int to, int denominator) {
        ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), from, to),
                Arrays.copyOfRange(slice.responses(), from, to), slice.padId());
        TokenStats stats = model.forward(batch.batch(), false);
        float[] old = batch.spread(Arrays.copyOfRange(slice.oldLogprobs(), from, to));
        float[] advantages = batch.spread(Arrays.copyOfRange(slice.advantages(), from, to));
        Losses.PolicyResult loss = Losses.clippedPolicy(stats.logprobs(), old, advantages, batch.responseMask(),
                slice.clipRatio(), denominator);
        model.backward(loss.dLogprobs(), null);
        return loss;
    }
}
