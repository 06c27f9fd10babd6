package org.sparkrlhf.jobs.calls;

import java.io.Serializable;

/**
 * A rank's mini-batches of a train call: mini-batch m is the rank's rows [starts[m], starts[m + 1]),
 * and its loss is divided by {@code tokens[m]}, the mini-batch's response tokens over all ranks,
 * so that the gradients summed over the ranks are the mini-batch's token mean.
 */
public record MiniBatches(int[] starts, int[] tokens) implements Serializable {
    public MiniBatches {
        if (starts.length != tokens.length + 1) {
            throw new IllegalArgumentException(tokens.length + " mini-batches need " + (tokens.length + 1)
                    + " starts, got " + starts.length);
        }
    }

    public int count() {
        return tokens.length;
    }

    /** The rank's first row of mini-batch m (m = count(): one past its last row). */
    public int start(int m) {
        return starts[m];
    }
}
