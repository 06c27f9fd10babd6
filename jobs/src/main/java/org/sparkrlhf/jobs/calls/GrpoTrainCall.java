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
 * The actor_train call of GRPO on its placement (data-parallel replicas, or tensor / pipeline shards
 * of each replica, every rank of a replica on the replica's rows): for each epoch and each mini-batch, one
 * optimizer step on the clipped GRPO loss (clipped surrogate on the sequence's group-normalised
 * advantage plus klCoef times the k3 KL to the reference, per response token), its gradient
 * flowing through the model's backward from dLoss/dLogprob. The driver cuts the batch into
 * mini-batches and each among the ranks ({@link MiniBatches}), so that a step's rows do not depend
 * on the layout; each mini-batch's loss is divided by its response token count over all ranks, so
 * the summed gradient is the mini-batch's token mean. A rank with no rows in a mini-batch still
 * takes part in the gradient sum.
 */
public final class GrpoTrainCall implements RankFunction<GrpoTrainCall.Slice, GrpoTrainCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int[][] responses, float[][] oldLogprobs, float[][] refLogprobs,
                        float[] advantages, double clipRatio, double klCoef, int epochs, MiniBatches miniBatches,
                        int padId) implements Serializable {
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
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int microBatches = context.placement() == null ? 1 : context.placement().microBatches();
        MiniBatchSteps.Totals t = MiniBatchSteps.run(context, replica, slice.epochs(), slice.responses(),
                slice.miniBatches(), (model, from, to, denominator) -> miniBatchLoss(model, slice, from, to,
                        denominator, microBatches));
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(t.meanLoss(), t.gradNorm(), t.clippedTokens(), t.tokens(), t.steps(), replica.version());
    }

    /**
     * Forward over rows [from, to) in {@code microBatches} parts (the placement's, for pipeline
     * stages to overlap), the GRPO loss of each part over the whole mini-batch's denominator, and
     * its backward into the model's gradients (which add up over the parts).
     */
    private static MiniBatchSteps.StepLoss miniBatchLoss(ResidentModel model, Slice slice, int from, int to, int denominator,
                                          int microBatches) {
        int parts = Math.min(microBatches, to - from);
        List<ResponseBatch> batches = new ArrayList<>(parts);
        List<Batch> inputs = new ArrayList<>(parts);
        int[] starts = new int[parts + 1];
        for (int j = 0; j <= parts; j++) {
            starts[j] = from + j * (to - from) / parts;
        }
        for (int j = 0; j < parts; j++) {
            ResponseBatch batch = ResponseBatch.of(Arrays.copyOfRange(slice.prompts(), starts[j], starts[j + 1]),
                    Arrays.copyOfRange(slice.responses(), starts[j], starts[j + 1]), slice.padId());
            batches.add(batch);
            inputs.add(batch.batch());
        }
        double[] out = new double[2];
        model.forwardBackward(inputs, (j, stats) -> {
            int a = starts[j];
            int b = starts[j + 1];
            ResponseBatch batch = batches.get(j);
            float[] old = batch.spread(Arrays.copyOfRange(slice.oldLogprobs(), a, b));
            float[] ref = batch.spread(Arrays.copyOfRange(slice.refLogprobs(), a, b));
            float[][] perRow = new float[b - a][];
            int scored = 0;
            for (int r = a; r < b; r++) {
                perRow[r - a] = new float[slice.responses()[r].length];
                Arrays.fill(perRow[r - a], slice.advantages()[r]);
                scored += slice.responses()[r].length;
            }
            float[] advantages = batch.spread(perRow);
            Losses.PolicyResult loss = Losses.grpoPolicy(stats.logprobs(), old, advantages, ref, batch.responseMask(),
                    slice.clipRatio(), slice.klCoef(), denominator);
            out[0] += loss.loss();
            out[1] += loss.clipFraction() * (double) scored;
            return loss.dLogprobs();
        });
        return new MiniBatchSteps.StepLoss(out[0], out[1], 0);
    }
}
