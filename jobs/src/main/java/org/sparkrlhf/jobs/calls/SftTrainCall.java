package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;

/**
 * The actor_train call of SFT on a data-parallel layout (dp ranks, tp = pp = 1, CPU): each rank
 * takes its replica from the executor's model store (loading it from {@link ModelSource} when
 * the store does not have it), runs one optimizer step on its rows with the loss scaled by the
 * whole batch's target token count, and keeps the updated replica under the next version.
 */
public final class SftTrainCall implements RankFunction<SftTrainCall.Slice, SftTrainCall.Result> {
    /**
     * One rank's input: its rows (token ids, right-padded here), the whole batch's target token
     * count, the model's version before the step and where to reload it from.
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, int[][] rows,
                        int padId, int batchTargetTokens, OptimizerConfig optimizer) implements Serializable {
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
        ModelStore store = ModelStore.get();
        ModelStore.Key key = new ModelStore.Key(slice.role(), slice.version(), layout, context.rank());
        ResidentModel replica = store.getOrLoad(key, () -> load(slice));
        TrainStep.Result step = TrainStep.run(replica, context.communicator(), model -> {
            Batch batch = Batch.rightPadded(slice.rows(), slice.padId());
            TokenStats stats = model.forward(batch, false);
            SftLoss.Result loss = SftLoss.of(batch, stats, slice.batchTargetTokens());
            model.backward(loss.dLogprobs(), null);
            return loss.loss();
        });
        store.remove(key);
        store.put(new ModelStore.Key(slice.role(), replica.version(), layout, context.rank()), replica);
        return new Result(step.loss(), step.step().gradNorm(), replica.version());
    }

    /** The engine's optimizer settings for a run's optimizer section (the warm-up is the driver's schedule). */
    public static AdamW.Hyper hyper(OptimizerConfig o) {
        return new AdamW.Hyper((float) o.lr(), (float) o.beta1(), (float) o.beta2(), (float) o.eps(),
                (float) o.weightDecay(), (float) o.gradClip());
    }

    private static ResidentModel load(Slice slice) {
        if (slice.source().version() != slice.version()) {
            throw new IllegalStateException(slice.role() + " version " + slice.version() + " is not in this executor and "
                    + "the newest checkpoint holds version " + slice.source().version() + " (" + slice.source().path() + ")");
        }
        if (slice.version() != 0) {
            throw new UnsupportedOperationException("reloading a trained " + slice.role()
                    + " needs its optimizer state, which checkpoints do not hold yet");
        }
        LlamaModel model = LlamaModel.load(new CpuBackend(), slice.source().localPath());
        return new ResidentModel(model, AdamW.forModel(model, hyper(slice.optimizer())), slice.version());
    }
}
