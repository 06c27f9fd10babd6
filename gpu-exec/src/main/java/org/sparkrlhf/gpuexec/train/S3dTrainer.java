package org.sparkrlhf.gpuexec.train;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.S3dExample;
import org.sparkrlhf.gpuexec.model.S3dLoss;

import java.util.List;

/**
 * S3D training as an engine function: each {@link #step} computes {@link S3dLoss} and its gradient
 * on a batch of examples and takes one AdamW step on the mask embeddings, the only trained
 * parameters (no weight decay on them: they are inputs, not weights).
 */
public final class S3dTrainer implements AutoCloseable {
    private final S3dLoss loss;
    private final AdamW optimizer;

    public S3dTrainer(LlamaModel model, S3dDraft draft, AdamW.Hyper hyper) {
        Backend b = model.backend();
        this.loss = new S3dLoss(model, draft);
        int[] shape = {draft.config().draftTokens(), model.config().hiddenSize()};
        this.optimizer = new AdamW(b, List.of(new AdamW.Param("s3d.mask_embeddings", draft.maskEmbeddings(), loss.gradient(),
                b.allocate(DType.F32, shape), b.allocate(DType.F32, shape), false)), hyper);
    }

    /** One step: the loss before the update (mean cross-entropy of the mask predictions). */
    public float step(List<S3dExample> examples) {
        loss.zeroGradient();
        float value = loss.forwardBackward(examples);
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

    @Override
    public void close() {
        optimizer.close();
        loss.free();
    }
}
