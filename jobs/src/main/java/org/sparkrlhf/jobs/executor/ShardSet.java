package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.train.AdamW;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A rank's slices by Hugging Face name, with no model built from them: what a reallocation leaves
 * when the destination only needs the tensors (a single-device copy to save from, a trained copy's
 * AdamW moments gathered for a checkpoint, or a test of the transfers). A reallocation's set holds
 * tensors of the rank's backend, which it received into in place; a set made from host arrays (a
 * test's, a profile's) holds those. Gathered moments carry the step count and settings of the
 * optimizer they were taken from.
 */
public final class ShardSet implements ShardTensors, AutoCloseable {
    /** The optimizer whose moments a set holds: its step count (the bias corrections' t) and settings. */
    public record OptimizerSteps(int steps, AdamW.Hyper hyper) {
    }

    private final Map<String, float[]> arrays;
    private final Backend backend;
    private final Map<String, Tensor> tensors;
    private final OptimizerSteps optimizer;

    public ShardSet(Map<String, float[]> tensors) {
        this(tensors, null);
    }

    /** Slices of an optimizer's moments ({@code optimizer}: whose), or of weights ({@code optimizer} null), as host arrays. */
    public ShardSet(Map<String, float[]> tensors, OptimizerSteps optimizer) {
        this(new LinkedHashMap<>(tensors), null, null, optimizer);
    }

    private ShardSet(Map<String, float[]> arrays, Backend backend, Map<String, Tensor> tensors, OptimizerSteps optimizer) {
        this.arrays = arrays;
        this.backend = backend;
        this.tensors = tensors;
        this.optimizer = optimizer;
    }

    /** Slices that are tensors of {@code backend} (the set owns them: {@link #close} frees them). */
    public static ShardSet onBackend(Backend backend, Map<String, Tensor> tensors, OptimizerSteps optimizer) {
        return new ShardSet(null, backend, new LinkedHashMap<>(tensors), optimizer);
    }

    @Override
    public float[] tensor(String name) {
        return arrays != null ? check(name, arrays.get(name)) : backend.download(check(name, tensors.get(name)));
    }

    @Override
    public ShardSlices slices(View view) {
        if (view != View.WEIGHTS) {
            throw new IllegalStateException("a shard set holds one set of slices, read as weights; no " + view);
        }
        return arrays != null ? ShardSlices.ofArrays(this::tensor)
                : ShardSlices.ofTensors(backend, name -> check(name, tensors.get(name)));
    }

    private <T> T check(String name, T slice) {
        if (slice == null) {
            throw new IllegalArgumentException("this shard holds no slice of '" + name + "' (it holds "
                    + (arrays != null ? arrays.keySet() : tensors.keySet()) + ")");
        }
        return slice;
    }

    /** Every slice on the host, by name (each downloaded when the set holds tensors: for small shards and tests). */
    public Map<String, float[]> tensors() {
        if (arrays != null) {
            return arrays;
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        for (String name : tensors.keySet()) {
            out.put(name, tensor(name));
        }
        return out;
    }

    /** The optimizer these moments are of; null for weights. */
    public OptimizerSteps optimizer() {
        return optimizer;
    }

    /** Frees the tensors of a set on a backend (a set of host arrays holds nothing to free). */
    @Override
    public void close() {
        if (tensors != null) {
            for (Tensor t : tensors.values()) {
                backend.free(t);
            }
        }
    }
}
