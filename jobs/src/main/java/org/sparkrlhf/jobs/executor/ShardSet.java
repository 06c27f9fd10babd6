package org.sparkrlhf.jobs.executor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A rank's slices as plain arrays, by Hugging Face name, with no model built from them: what a
 * reallocation leaves when the destination only needs the parameters (a single-device copy to
 * save from, or a test of the transfers).
 */
public final class ShardSet implements ShardTensors {
    private final Map<String, float[]> tensors;

    public ShardSet(Map<String, float[]> tensors) {
        this.tensors = new LinkedHashMap<>(tensors);
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
}
