package org.sparkrlhf.jobs.executor;

/**
 * A rank's slices of a model's parameters, by Hugging Face name, each row-major as a
 * [rows, cols] matrix (a 1-D tensor of n is [n, 1]) cut as the planner's {@code ShardLayout}
 * says. What a reallocation reads from its source ranks.
 */
public interface ShardTensors {
    /** This rank's slice of {@code name}; an error when the rank holds none of it. */
    float[] tensor(String name);
}
