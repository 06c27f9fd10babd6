package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainStep;

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
                    Losses.ValueResult loss = miniBatchLoss(model, slice, from, to, denominator);
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

    /** Values over rows [from, to), the clipped value loss, and its backward into the critic's gradients. */
    private static Losses.ValueResult miniBatchLoss(ResidentModel model, Slice slice, int from, int to, int denominator) {
        ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), from, to),
                Arrays.copyOfRange(slice.responses(), from, to), slice.padId());
        float[] values = model.values(batch.batch());
        float[] old = ValuePositions.spread(batch, Arrays.copyOfRange(slice.oldValues(), from, to));
        float[] returns = ValuePositions.spread(batch, Arrays.copyOfRange(slice.returns(), from, to));
        Losses.ValueResult loss = Losses.clippedValue(values, old, returns, ValuePositions.mask(batch),
                slice.valueClip(), slice.valueCoef(), denominator);
        model.backwardValues(loss.dValues());
        return loss;
    }
}
