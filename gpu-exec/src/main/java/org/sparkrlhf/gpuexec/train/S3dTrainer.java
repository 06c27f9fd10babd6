package org.sparkrlhf.gpuexec.train;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.S3dExample;
import org.sparkrlhf.gpuexec.model.S3dLoss;
import org.sparkrlhf.gpuexec.parallel.Collective;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * S3D training as an engine function: each {@link #step} computes {@link S3dLoss} and its gradient
 * on a batch of examples and takes one AdamW step on the mask embeddings, the only trained
 * parameters (no weight decay on them: they are inputs, not weights). The optimizer's state
 * ({@link Moments}) can start from and be read back as arrays, so that a caller that keeps the
 * draft between calls (an RLHF run's driver) keeps its moments too, and checkpoints them
 * ({@link #write}, {@link #read}: an {@link OptimizerState} file of the one parameter).
 */
public final class S3dTrainer implements AutoCloseable {
    /** The file beside {@link S3dDraft#WEIGHTS} that holds the draft's optimizer state in a checkpoint. */
    public static final String OPTIMIZER = "s3d_optimizer.safetensors";
    static final String PARAM = "s3d.mask_embeddings";

    /** AdamW's first and second moments of the mask embeddings ([k * hidden] each) and the steps taken. */
    public record Moments(float[] first, float[] second, int steps) implements java.io.Serializable {
    }

    private final Backend backend;
    private final S3dLoss loss;
    private final AdamW optimizer;

    /** A fresh optimizer (moments zero, no steps). */
    public S3dTrainer(LlamaModel model, S3dDraft draft, AdamW.Hyper hyper) {
        this(model, draft, hyper, null);
    }

    /** An optimizer continuing from {@code moments} (null: fresh). */
    public S3dTrainer(LlamaModel model, S3dDraft draft, AdamW.Hyper hyper, Moments moments) {
        this.backend = model.backend();
        this.loss = new S3dLoss(model, draft);
        int[] shape = {draft.config().draftTokens(), model.config().hiddenSize()};
        Tensor m = backend.allocate(DType.F32, shape), v = backend.allocate(DType.F32, shape);
        this.optimizer = new AdamW(backend, List.of(new AdamW.Param(PARAM, draft.maskEmbeddings(), loss.gradient(),
                m, v, false)), hyper);
        if (moments != null) {
            if (moments.first().length != m.numel() || moments.second().length != v.numel()) {
                throw new IllegalArgumentException("moments of " + moments.first().length + " values for mask embeddings of "
                        + m.numel());
            }
            backend.upload(m, moments.first());
            backend.upload(v, moments.second());
            optimizer.restoreStepCount(moments.steps());
        }
    }

    /** One step: the loss before the update (mean cross-entropy of the mask predictions). */
    public float step(List<S3dExample> examples) {
        loss.zeroGradient();
        float value = loss.forwardBackward(examples);
        optimizer.step();
        return value;
    }

    /**
     * One data-parallel step over {@code group}'s ranks, each with its own examples (none on a rank
     * whose rows are too short): the gradient is the mean over all ranks' examples (each rank's
     * weighted by its count), so every rank takes the same update. The rank's loss before the
     * update, NaN without examples.
     */
    public float step(List<S3dExample> examples, Collective group) {
        if (group == null || group.size() == 1) {
            return step(examples);
        }
        loss.zeroGradient();
        float value = examples.isEmpty() ? Float.NaN : loss.forwardBackward(examples);
        float[] g = backend.download(loss.gradient());
        float[] sum = java.util.Arrays.copyOf(g, g.length + 1);
        for (int i = 0; i < g.length; i++) {
            sum[i] *= examples.size();
        }
        sum[g.length] = examples.size();
        group.allReduceSum(sum);
        float total = sum[g.length];
        if (total == 0) {
            return value; // no rank had an example: nothing to learn from
        }
        for (int i = 0; i < g.length; i++) {
            g[i] = sum[i] / total;
        }
        backend.upload(loss.gradient(), g);
        optimizer.step();
        return value;
    }

    /** The loss on examples without a step (evaluation). */
    public float evaluate(List<S3dExample> examples) {
        return loss.loss(examples);
    }

    public AdamW optimizer() {
        return optimizer;
    }

    /** The optimizer's state now. */
    public Moments moments() {
        AdamW.Param p = optimizer.params().get(0);
        return new Moments(backend.download(p.m()), backend.download(p.v()), optimizer.stepCount());
    }

    /** Writes a draft's optimizer state ([draftTokens, hidden] moments) to {@code file}, with the settings in use. */
    public static void write(Moments moments, int draftTokens, int hidden, AdamW.Hyper hyper, Path file) {
        OptimizerState.write(List.of(new OptimizerState.Moments(PARAM, new int[]{draftTokens, hidden},
                moments::first, moments::second)), moments.steps(), hyper, file);
    }

    /** Reads what {@link #write} wrote for a draft of {@code draftTokens} x {@code hidden}. */
    public static Moments read(Path file, int draftTokens, int hidden) {
        OptimizerState.Read r = OptimizerState.read(file, Map.of(PARAM, new int[]{draftTokens, hidden}));
        return new Moments(r.first().get(PARAM), r.second().get(PARAM), r.step());
    }

    @Override
    public void close() {
        optimizer.close();
        loss.free();
    }
}
