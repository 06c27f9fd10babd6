package org.sparkrlhf.planner.graph;

import java.util.List;
import java.util.Objects;

/**
 * A step of an iteration that runs on the driver, not on a model: it reads keys of the batch and
 * writes others (a reward function, KL shaping, GAE, group-normalised or leave-one-out advantages,
 * group weights). It costs the planner nothing, but it orders the calls: a call that reads a hook's
 * output depends on the calls that produce the hook's inputs.
 */
public record DriverHook(String name, List<String> inputKeys, List<String> outputKeys) {
    public DriverHook {
        Objects.requireNonNull(name, "name");
        inputKeys = List.copyOf(inputKeys);
        outputKeys = List.copyOf(outputKeys);
        if (name.isBlank() || outputKeys.isEmpty()) {
            throw new IllegalArgumentException("a driver hook needs a name and at least one output key");
        }
    }
}
