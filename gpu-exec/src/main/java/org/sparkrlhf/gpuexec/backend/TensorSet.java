package org.sparkrlhf.gpuexec.backend;

import java.util.ArrayList;
import java.util.List;

/**
 * Buffers allocated on a backend together and freed together: a decode state's tokens, caches and
 * activations, kept for as long as the generator reuses them.
 */
public final class TensorSet {
    private final Backend backend;
    private final List<Tensor> all = new ArrayList<>();

    public TensorSet(Backend backend) {
        this.backend = backend;
    }

    public Tensor ints(int... shape) {
        return add(backend.allocate(DType.I32, shape));
    }

    public Tensor floats(int... shape) {
        return add(backend.allocate(DType.F32, shape));
    }

    /** A float tensor of the backend's {@link Backend#activationType} (activations, KV caches). */
    public Tensor activations(int... shape) {
        return add(backend.allocate(backend.activationType(), shape));
    }

    private Tensor add(Tensor t) {
        all.add(t);
        return t;
    }

    /** Frees every buffer of the set; the set is empty afterwards. */
    public void free() {
        for (Tensor t : all) backend.free(t);
        all.clear();
    }
}
