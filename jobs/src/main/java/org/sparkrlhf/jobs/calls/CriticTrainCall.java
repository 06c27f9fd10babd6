package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainResult;

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
                        double valueClip, double valueCoef, int epochs, MiniBatches miniBatches, int padId)
            implements Serializable {
    }

    /**
     * The mean over steps of the step's loss (summed over ranks), the last step's gradient norm,
     * this rank's clipped and scored token counts (over all steps), and the new version.
     */
    public record Result(double loss, float gradNorm, long clippedTokens, long tokens, int steps, long version)
            implements Serializable, TrainResult {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        String layout = context.layoutKey();
        ResidentModel replica = Critics.trained(context, slice.role(), slice.source(), slice.version(),
                slice.optimizer(), slice.headSeed());
        int microBatches = context.placement() == null ? 1 : context.placement().microBatches();
        MiniBatchSteps.Totals t = MiniBatchSteps.run(context, replica, slice.epochs(), slice.responses(),
                slice.miniBatches(), (model, from, to, denominator) -> miniBatchLoss(model, slice, from, to,
                        denominator, microBatches));
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(t.meanLoss(), t.gradNorm(), t.clippedTokens(), t.tokens(), t.steps(), replica.version());
    }

    /**
     * Values over rows [from, to) in {@code microBatches} parts (the placement's: they bound the
     * activations a rank keeps), the clipped value loss of each part over the whole mini-batch's
     * denominator, and its backward into the critic's gradients, which add up over the parts. The
     * parts run one after the other: a value head's forward keeps one part's activations.
     */
    private static MiniBatchSteps.StepLoss miniBatchLoss(ResidentModel model, Slice slice, int from, int to,
                                                         int denominator, int microBatches) {
        int parts = Math.max(1, Math.min(microBatches, to - from));
        double loss = 0;
        double clipped = 0;
        for (int j = 0; j < parts; j++) {
            int a = from + j * (to - from) / parts;
            int b = from + (j + 1) * (to - from) / parts;
            ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), a, b),
                    Arrays.copyOfRange(slice.responses(), a, b), slice.padId());
            float[] values = model.values(batch.batch());
            float[] old = ValuePositions.spread(batch, Arrays.copyOfRange(slice.oldValues(), a, b));
            float[] returns = ValuePositions.spread(batch, Arrays.copyOfRange(slice.returns(), a, b));
            Losses.ValueResult part = Losses.clippedValue(values, old, returns, ValuePositions.mask(batch),
                    slice.valueClip(), slice.valueCoef(), denominator);
            model.backwardValues(part.dValues());
            loss += part.loss();
            clipped += part.clipFraction() * MiniBatchSteps.scored(slice.responses(), a, b);
        }
        return new MiniBatchSteps.StepLoss(loss, clipped, 0);
    }
}
