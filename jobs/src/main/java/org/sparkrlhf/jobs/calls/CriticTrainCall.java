package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.Arrays;

/**
 * The critic_train call of PPO on its placement (data-parallel replicas, or tensor / pipeline
 * shards of each replica): for each epoch and mini-batch, one
 * optimizer step on the clipped value loss, 0.5 * valueCoef * max((V - R)^2, (V_clip - R)^2) per
 * response token, with V_clip kept within valueClip of the values critic_inf gave (the old
 * values) and R the GAE returns. Mini-batches and the loss's denominator are as in
 * {@link PpoActorTrainCall}.
 */
public final class CriticTrainCall implements RankFunction<CriticTrainCall.Slice, CriticTrainCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        long headSeed, int[][] prompts, int[][] responses, float[][] oldValues, float[][] returns,
                        double valueClip, double valueCoef, int epochs, int[] miniBatchTokens, int padId)
            implements Serializable {
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
        ResidentModel replica = Critics.trained(context, slice.role(), slice.source(), slice.version(),
                slice.optimizer(), slice.headSeed());
        MiniBatchSteps.Totals t = MiniBatchSteps.run(context, replica, slice.epochs(), slice.responses(),
                slice.miniBatchTokens(), (model, from, to, denominator) -> miniBatchLoss(model, slice, from, to, denominator));
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(t.meanLoss(), t.gradNorm(), t.clippedTokens(), t.tokens(), t.steps(), replica.version());
    }

    /** Values over rows [from, to), the clipped value loss, and its backward into the critic's gradients. */
    private static MiniBatchSteps.StepLoss miniBatchLoss(ResidentModel model, Slice slice, int from, int to,
                                                         int denominator) {
        ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), from, to),
                Arrays.copyOfRange(slice.responses(), from, to), slice.padId());
        float[] values = model.values(batch.batch());
        float[] old = ValuePositions.spread(batch, Arrays.copyOfRange(slice.oldValues(), from, to));
        float[] returns = ValuePositions.spread(batch, Arrays.copyOfRange(slice.returns(), from, to));
        Losses.ValueResult loss = Losses.clippedValue(values, old, returns, ValuePositions.mask(batch),
                slice.valueClip(), slice.valueCoef(), denominator);
        model.backwardValues(loss.dValues());
        return new MiniBatchSteps.StepLoss(loss.loss(),
                loss.clipFraction() * MiniBatchSteps.scored(slice.responses(), from, to), 0);
    }
}
