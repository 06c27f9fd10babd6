package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.train.AdamW;

/**
 * A model replica or shard kept in an executor's {@link ModelStore}: the engine's model, its
 * optimizer when this copy is trained, and the parameter version (training steps applied).
 */
public final class ResidentModel implements ShardTensors, AutoCloseable {
    private final LlamaModel model;
    private final AdamW optimizer;
    private long version;

    public ResidentModel(LlamaModel model, AdamW optimizer, long version) {
        this.model = model;
        this.optimizer = optimizer;
        this.version = version;
    }

    public LlamaModel model() {
        return model;
    }

    /** The optimizer; an error for copies that are only used for inference. */
    public AdamW optimizer() {
        if (optimizer == null) {
            throw new IllegalStateException("this copy of the model has no optimizer (it is not trained)");
        }
        return optimizer;
    }

    public long version() {
        return version;
    }

    /** A parameter as this copy holds it (the whole tensor: the engine's model is a whole replica). */
    @Override
    public float[] tensor(String name) {
        return model.backend().download(model.parameters().get(name));
    }

    void advance() {
        version++;
    }

    @Override
    public void close() {
        if (optimizer != null) {
            optimizer.close();
        }
        model.close();
    }
}
