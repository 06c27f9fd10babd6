package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

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
        MiniBatchSteps.Totals t = MiniBatchSteps.run(context, replica, slice.epochs(), slice.responses(),
                slice.miniBatchTokens(), (model, from, to, denominator) -> miniBatchLoss(model, slice, from, to, denominator));
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(t.meanLoss(), t.gradNorm(), t.clippedTokens(), t.tokens(), t.extraSum(), t.steps(),
                replica.version());
    }

    /** Forward over rows [from, to), the clipped surrogate, and its backward into the model's gradients. */
    private static MiniBatchSteps.StepLoss miniBatchLoss(ResidentModel model, Slice slice, int from, int to,
                                                         int denominator) {
        ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), from, to),
                Arrays.copyOfRange(slice.responses(), from, to), slice.padId());
        TokenStats stats = model.forward(batch.batch(), false);
        float[] old = batch.spread(Arrays.copyOfRange(slice.oldLogprobs(), from, to));
        float[] advantages = batch.spread(Arrays.copyOfRange(slice.advantages(), from, to));
        Losses.PolicyResult loss = Losses.clippedPolicy(stats.logprobs(), old, advantages, batch.responseMask(),
                slice.clipRatio(), denominator);
        model.backward(loss.dLogprobs(), null);
        int scored = MiniBatchSteps.scored(slice.responses(), from, to);
        return new MiniBatchSteps.StepLoss(loss.loss(), loss.clipFraction() * scored, loss.approxKl() * scored);
    }
}
