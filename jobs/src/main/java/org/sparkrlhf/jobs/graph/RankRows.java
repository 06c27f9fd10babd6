package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.MiniBatches;

import java.lang.reflect.Array;

/**
 * The rows of a train call's batch that one data-parallel rank trains on, in the order it takes
 * them ({@code index}: positions in the batch), and its mini-batches: the rank's mini-batch m is its
 * rows [starts[m], starts[m + 1]). {@link RowSplit#rankRows} makes them so that a mini-batch holds
 * the same rows of the batch whatever the data-parallel degree.
 */
public record RankRows(int[] index, MiniBatches miniBatches) {
    public int size() {
        return index.length;
    }

    /** The rank's elements of a per-row array, in its order. */
    @SuppressWarnings("unchecked")
    public <T> T[] of(T[] rows) {
        T[] out = (T[]) Array.newInstance(rows.getClass().getComponentType(), index.length);
        for (int i = 0; i < index.length; i++) {
            out[i] = rows[index[i]];
        }
        return out;
    }

    public float[] of(float[] rows) {
        float[] out = new float[index.length];
        for (int i = 0; i < index.length; i++) {
            out[i] = rows[index[i]];
        }
        return out;
    }
}
