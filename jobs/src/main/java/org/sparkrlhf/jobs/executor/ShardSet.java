package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.train.AdamW;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A rank's slices as plain arrays, by Hugging Face name, with no model built from them: what a
 * reallocation leaves when the destination only needs the tensors (a single-device copy to save
 * from, a trained copy's AdamW moments gathered for a checkpoint, or a test of the transfers).
 * Gathered moments carry the step count and settings of the optimizer they were taken from.
 */
public final class ShardSet implements ShardTensors {
    /** The optimizer whose moments a set holds: its step count (the bias corrections' t) and settings. */
    public record OptimizerSteps(int steps, AdamW.Hyper hyper) {
    }

    private final Map<String, float[]> tensors;
    private final OptimizerSteps optimizer;

    public ShardSet(Map<String, float[]> tensors) {
        this(tensors, null);
    }

    /** Slices of an optimizer's moments ({@code optimizer}: whose), or of weights ({@code optimizer} null). */
    public ShardSet(Map<String, float[]> tensors, OptimizerSteps optimizer) {
        this.tensors = new LinkedHashMap<>(tensors);
        this.optimizer = optimizer;
    }

    @Override
    public float[] tensor(String name) {
        float[] t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("this shard holds no slice of '" + name + "' (it holds "
                    + tensors.keySet() + ")");
        }
        return t;
    }

    public Map<String, float[]> tensors() {
        return tensors;
    }

    /** The optimizer these moments are of; null for weights. */
    public OptimizerSteps optimizer() {
        return optimizer;
    }
}
