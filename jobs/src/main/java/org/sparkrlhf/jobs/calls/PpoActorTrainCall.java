package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainResult;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The actor_train call of PPO on its placement (data-parallel replicas, or tensor / pipeline shards
 * of each replica, every rank of a replica on the replica's rows): for each epoch and each mini-batch, one
 * optimizer step (the mini-batch run in the placement's micro-batches, whose gradients add up) on
 * the clipped surrogate (Schulman et al. 2017) with per-token advantages (the KL penalty is already
 * in the rewards the advantages came from). The driver cuts the batch into mini-batches and each
 * among the ranks ({@link MiniBatches}), so that a step's rows do not depend on the layout; each
 * mini-batch's loss is divided by its response token count over all ranks, so the summed gradient
 * is the mini-batch's token mean. A rank with no rows in a mini-batch still takes part in the
 * gradient sum.
 */
public final class PpoActorTrainCall implements RankFunction<PpoActorTrainCall.Slice, PpoActorTrainCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int[][] responses, float[][] oldLogprobs, float[][] advantages,
                        double clipRatio, int epochs, MiniBatches miniBatches, int padId) implements Serializable {
    }

    /**
     * The mean over steps of the step's loss (summed over ranks), the last step's gradient norm,
     * this rank's clipped and scored token counts and its summed k3 estimate of KL(old || new)
     * over the scored tokens (over all steps), and the new version.
     */
    public record Result(double loss, float gradNorm, long clippedTokens, long tokens, double approxKlSum, int steps,
                         long version) implements Serializable, TrainResult {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        String layout = context.layoutKey();
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int microBatches = context.placement() == null ? 1 : context.placement().microBatches();
        MiniBatchSteps.Totals t = MiniBatchSteps.run(context, replica, slice.epochs(), slice.responses(),
                slice.miniBatches(), (model, from, to, denominator) -> miniBatchLoss(model, slice, from, to,
                        denominator, microBatches));
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(t.meanLoss(), t.gradNorm(), t.clippedTokens(), t.tokens(), t.extraSum(), t.steps(),
                replica.version());
    }

    /**
     * Forward over rows [from, to) in {@code microBatches} parts (the placement's, for pipeline
     * stages to overlap), the clipped surrogate of each part over the whole mini-batch's
     * denominator, and its backward into the model's gradients (which add up over the parts).
     */
    private static MiniBatchSteps.StepLoss miniBatchLoss(ResidentModel model, Slice slice, int from, int to,
                                                         int denominator, int microBatches) {
        int parts = Math.min(microBatches, to - from);
        int[] starts = new int[parts + 1];
        for (int j = 0; j <= parts; j++) {
            starts[j] = from + j * (to - from) / parts;
        }
        List<ResponseBatch> batches = new ArrayList<>(parts);
        List<Batch> inputs = new ArrayList<>(parts);
        for (int j = 0; j < parts; j++) {
            ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), starts[j], starts[j + 1]),
                    Arrays.copyOfRange(slice.responses(), starts[j], starts[j + 1]), slice.padId());
            batches.add(batch);
            inputs.add(batch.batch());
        }
        double[] out = new double[3];
        model.forwardBackward(inputs, (j, stats) -> {
            int a = starts[j];
            int b = starts[j + 1];
            ResponseBatch batch = batches.get(j);
            float[] old = batch.spread(Arrays.copyOfRange(slice.oldLogprobs(), a, b));
            float[] advantages = batch.spread(Arrays.copyOfRange(slice.advantages(), a, b));
            Losses.PolicyResult loss = Losses.clippedPolicy(stats.logprobs(), old, advantages, batch.responseMask(),
                    slice.clipRatio(), denominator);
            // the fractions are over this part's tokens
            int scored = MiniBatchSteps.scored(slice.responses(), a, b);
            out[0] += loss.loss();
            out[1] += loss.clipFraction() * (double) scored;
            out[2] += loss.approxKl() * (double) scored;
            return loss.dLogprobs();
        });
        return new MiniBatchSteps.StepLoss(out[0], out[1], out[2]);
    }
}
