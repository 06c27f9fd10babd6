package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The actor_train call of SFT on its placement (data-parallel replicas, or tensor / pipeline shards
 * of each replica, every rank of a replica on the replica's rows): each rank takes its copy from the
 * executor's model store (loading it from {@link ModelSource} when the store does not have it), runs
 * one optimizer step on its replica's rows with the loss on the answer tokens (and eos) divided by
 * the whole batch's answer token count, so that the gradients summed over the data-parallel ranks
 * are the whole batch's mean, and keeps the updated copy under the next version. The rows go
 * through the model in the placement's micro-batches (pipeline stages overlap on them); their
 * gradients add up to the same step.
 */
public final class SftTrainCall implements RankFunction<SftTrainCall.Slice, SftTrainCall.Result> {
    /**
     * One data-parallel replica's input: its rows (token ids, right-padded here) with the number of
     * leading tokens of each that are bos and prompt (not trained on), the whole batch's target token
     * count, the model's version before the step and where to reload it from.
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, int[][] rows,
                        int[] promptTokens, int padId, int batchTargetTokens, OptimizerConfig optimizer)
            implements Serializable {
    }

    /** The step's loss over the whole batch (identical on every rank), and the gradient norm. */
    public record Result(double loss, float gradNorm, long version) implements Serializable, TrainResult {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int microBatches = context.placement() == null ? 1 : context.placement().microBatches();
        TrainStep.Result step = TrainStep.step(replica, context.dataGroup(), model -> loss(model, slice, microBatches));
        Replicas.advanced(slice.role(), slice.version(), context.layoutKey(), context.rank(), replica);
        return new Result(step.loss(), step.step().gradNorm(), replica.version());
    }

    /**
     * Forward over the slice's rows in {@code microBatches} parts, the SFT loss of each over the whole
     * batch's target count, and its backward into the copy's gradients; returns the summed loss.
     */
    private static double loss(ResidentModel model, Slice slice, int microBatches) {
        int rows = slice.rows().length;
        if (rows == 0) {
            return 0.0;
        }
        int parts = Math.min(microBatches, rows);
        int[] starts = new int[parts + 1];
        for (int j = 0; j <= parts; j++) {
            starts[j] = j * rows / parts;
        }
        List<Batch> inputs = new ArrayList<>(parts);
        for (int j = 0; j < parts; j++) {
            inputs.add(Batch.rightPadded(Arrays.copyOfRange(slice.rows(), starts[j], starts[j + 1]), slice.padId()));
        }
        double[] sum = new double[1];
        model.forwardBackward(inputs, (j, stats) -> {
            int[] prompts = Arrays.copyOfRange(slice.promptTokens(), starts[j], starts[j + 1]);
            SftLoss.Result loss = SftLoss.of(SftLoss.completionMask(inputs.get(j), prompts), stats,
                    slice.batchTargetTokens());
            sum[0] += loss.loss();
            return loss.dLogprobs();
        });
        return sum[0];
    }

    /** The engine's optimizer settings for a run's optimizer section (the warm-up is the driver's schedule). */
    public static AdamW.Hyper hyper(OptimizerConfig o) {
        return new AdamW.Hyper((float) o.lr(), (float) o.beta1(), (float) o.beta2(), (float) o.eps(),
                (float) o.weightDecay(), (float) o.gradClip());
    }
}
