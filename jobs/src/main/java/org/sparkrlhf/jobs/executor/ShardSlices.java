package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.function.Function;

/**
 * A rank's slices of a model's parameters as a reallocation reads and writes them: by ranges of
 * elements of one parameter's slice (row-major), so that no whole slice needs a host copy. The
 * slices are either a backend's tensors (a resident model's, or the destination's, allocated on the
 * device before anything arrives) or host arrays (a shard set kept as arrays).
 */
public interface ShardSlices {
    /** Copies elements {@code [at, at + n)} of {@code param}'s slice into {@code into[to ..]}. */
    void read(String param, long at, float[] into, int to, int n);

    /** Stores {@code values[from .. from + n)} as elements {@code [at, at + n)} of {@code param}'s slice. */
    void write(String param, long at, float[] values, int from, int n);

    /**
     * {@code param}'s slice when it is a tensor of {@code backend}, so that ranges move between it and
     * another tensor of that backend (a chunk received on the device) with no host copy; null otherwise.
     */
    Tensor tensorOn(Backend backend, String param);

    /**
     * Slices that are tensors of {@code backend}, {@code tensors} giving each parameter's: ranges go
     * in and out with the backend's ranged copies.
     */
    static ShardSlices ofTensors(Backend backend, Function<String, Tensor> tensors) {
        return new ShardSlices() {
            @Override
            public void read(String param, long at, float[] into, int to, int n) {
                backend.downloadRange(tensors.apply(param), at, into, to, n);
            }

            @Override
            public void write(String param, long at, float[] values, int from, int n) {
                backend.uploadRange(tensors.apply(param), at, values, from, n);
            }

            @Override
            public Tensor tensorOn(Backend b, String param) {
                return b == backend ? tensors.apply(param) : null;
            }
        };
    }

    /**
     * Slices that are host arrays, {@code arrays} giving each parameter's. Only the array of the
     * parameter at hand is held, so a source whose arrays are made on request has one at a time
     * (pieces of one parameter follow each other in the plan).
     */
    static ShardSlices ofArrays(Function<String, float[]> arrays) {
        return new ShardSlices() {
            private String heldName;
            private float[] held;

            private float[] slice(String name) {
                if (!name.equals(heldName)) {
                    held = arrays.apply(name);
                    heldName = name;
                }
                return held;
            }

            @Override
            public void read(String param, long at, float[] into, int to, int n) {
                System.arraycopy(slice(param), Math.toIntExact(at), into, to, n);
            }

            @Override
            public void write(String param, long at, float[] values, int from, int n) {
                System.arraycopy(values, from, slice(param), Math.toIntExact(at), n);
            }

            @Override
            public Tensor tensorOn(Backend backend, String param) {
                return null;
            }
        };
    }
}
