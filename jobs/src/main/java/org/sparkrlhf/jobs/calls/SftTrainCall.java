package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;

/**
 * The actor_train call of SFT on a data-parallel layout (dp ranks, tp = pp = 1, CPU): each rank
 * takes its replica from the executor's model store (loading it from {@link ModelSource} when
 * the store does not have it), runs one optimizer step on its rows with the loss on the answer
 * tokens (and eos) scaled by the whole batch's answer token count, and keeps the updated replica
 * under the next version.
 */
public final class SftTrainCall implements RankFunction<SftTrainCall.Slice, SftTrainCall.Result> {
    /**
     * One rank's input: its rows (token ids, right-padded here) with the number of leading tokens of
     * each that are bos and prompt (not trained on), the whole batch's target token count, the
     * model's version before the step and where to reload it from.
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, int[][] rows,
                        int[] promptTokens, int padId, int batchTargetTokens, OptimizerConfig optimizer)
            implements Serializable {
    }

    /** The step's loss over the whole batch (identical on every rank), and the gradient norm. */
    public record Result(double loss, float gradNorm, long version) implements Serializable {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        String layout = context.layoutKey();
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), layout, context.rank(),
                slice.optimizer());
        TrainStep.Result step = TrainStep.run(replica, context.communicator(), model -> {
            Batch batch = Batch.rightPadded(slice.rows(), slice.padId());
            TokenStats stats = model.forward(batch, false);
            SftLoss.Result loss = SftLoss.of(SftLoss.completionMask(batch, slice.promptTokens()), stats,
                    slice.batchTargetTokens());
            model.backward(loss.dLogprobs(), null);
            return loss.loss();
        });
        Replicas.advanced(slice.role(), slice.version(), layout, context.rank(), replica);
        return new Result(step.loss(), step.step().gradNorm(), replica.version());
    }

    /** The engine's optimizer settings for a run's optimizer section (the warm-up is the driver's schedule). */
    public static AdamW.Hyper hyper(OptimizerConfig o) {
        return new AdamW.Hyper((float) o.lr(), (float) o.beta1(), (float) o.beta2(), (float) o.eps(),
                (float) o.weightDecay(), (float) o.gradClip());
    }
}
