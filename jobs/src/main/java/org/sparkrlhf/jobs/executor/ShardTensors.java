package org.sparkrlhf.jobs.executor;

/**
 * A rank's slices of a model's parameters, by Hugging Face name, each row-major as a
 * [rows, cols] matrix (a 1-D tensor of n is [n, 1]) cut as the planner's {@code ShardLayout}
 * says. What a reallocation reads from its source ranks: the weights, or a trained copy's AdamW
 * moments, which have the weights' shapes and cut.
 */
public interface ShardTensors {
    /** Which tensors of a parameter a reallocation moves: the weights, or AdamW's first or second moment. */
    enum View {
        WEIGHTS(""), EXP_AVG("exp_avg"), EXP_AVG_SQ("exp_avg_sq");

        private final String suffix;

        View(String suffix) {
            this.suffix = suffix;
        }

        /**
         * The layout part of the store key under which a destination keeps this view of the copy laid
         * out as {@code layout}: the layout itself for the weights, {@code <layout>#exp_avg} and
         * {@code <layout>#exp_avg_sq} for the moments (so that they never meet a model's key).
         */
        public String layoutKey(String layout) {
            return this == WEIGHTS ? layout : layout + "#" + suffix;
        }
    }

    /** This rank's slice of {@code name}, whole on the host; an error when the rank holds none of it. */
    float[] tensor(String name);

    /**
     * This rank's slices of {@code view}, read by ranges: what a reallocation sends from, so that a
     * source on a device moves no whole slice through the host.
     */
    ShardSlices slices(View view);

    /** This rank's slice of {@code name}'s weights or moments; copies without an optimizer have only weights. */
    default float[] tensor(String name, View view) {
        if (view != View.WEIGHTS) {
            throw new IllegalStateException("this copy holds no optimizer state, so no " + view + " of '" + name + "'");
        }
        return tensor(name);
    }
}
