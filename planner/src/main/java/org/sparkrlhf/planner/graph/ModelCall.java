package org.sparkrlhf.planner.graph;

import java.util.List;
import java.util.Objects;

/**
 * One model function call of an RLHF iteration: the model role it runs on, what it does, the keys of
 * the batch it reads and the keys it writes. Every call processes the iteration's whole batch of
 * sequences; a TRAIN call splits it into {@code trainSteps} optimizer steps (PPO mini-batches) and
 * passes over them {@code epochs} times; a DRAFT_TRAIN call takes {@code trainSteps} steps, each on
 * examples drawn from the whole batch.
 */
public record ModelCall(String name, String role, CallKind kind, List<String> inputKeys, List<String> outputKeys,
                        int trainSteps, int epochs) {
    public ModelCall {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(role, "role");
        Objects.requireNonNull(kind, "kind");
        inputKeys = List.copyOf(inputKeys);
        outputKeys = List.copyOf(outputKeys);
        if (name.isBlank() || role.isBlank()) {
            throw new IllegalArgumentException("a model call needs a name and a role");
        }
        if (trainSteps < 1) {
            throw new IllegalArgumentException("call " + name + ": trainSteps must be >= 1, got " + trainSteps);
        }
        if (kind != CallKind.TRAIN && kind != CallKind.DRAFT_TRAIN && trainSteps != 1) {
            throw new IllegalArgumentException("call " + name + ": only TRAIN and DRAFT_TRAIN calls take several optimizer steps");
        }
        if (epochs < 1 || kind != CallKind.TRAIN && epochs != 1) {
            throw new IllegalArgumentException("call " + name + ": epochs must be 1, or more for a TRAIN call, got "
                    + epochs);
        }
    }

    /**
     * Whether this GENERATE call also writes its samples' logprobs under the generating policy (a third
     * output key, after the sequences and their prompt mask): the engine then runs a forward over
     * prompt + response after decoding, as an inference call would.
     */
    public boolean scoresSamples() {
        return kind == CallKind.GENERATE && outputKeys.size() > 2;
    }

    /** A call of one epoch. */
    public ModelCall(String name, String role, CallKind kind, List<String> inputKeys, List<String> outputKeys,
                     int trainSteps) {
        this(name, role, kind, inputKeys, outputKeys, trainSteps, 1);
    }

    /** This train call passing {@code n} times over its mini-batches. */
    public ModelCall withEpochs(int n) {
        return new ModelCall(name, role, kind, inputKeys, outputKeys, trainSteps, n);
    }

    public static ModelCall generate(String name, String role, List<String> in, List<String> out) {
        return new ModelCall(name, role, CallKind.GENERATE, in, out, 1);
    }

    public static ModelCall inference(String name, String role, List<String> in, List<String> out) {
        return new ModelCall(name, role, CallKind.INFERENCE, in, out, 1);
    }

    public static ModelCall train(String name, String role, List<String> in, int steps) {
        return new ModelCall(name, role, CallKind.TRAIN, in, List.of(), steps);
    }

    public static ModelCall draftTrain(String name, String role, List<String> in, int steps) {
        return new ModelCall(name, role, CallKind.DRAFT_TRAIN, in, List.of(), steps);
    }
}
