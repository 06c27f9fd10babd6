package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.graph.Keys;

import java.util.List;

/** A run's training rows, read and tokenized on the driver; the data order picks which rows each iteration gets. */
public interface TrainingData {
    /** Rows to train on (the data order's size). */
    int size();

    /** Writes the graph's dataset keys of rows {@code picked} (in this order) into the iteration's batch. */
    void batch(List<Integer> picked, Keys keys);

    /** One line for the run's log: what was read, how many rows, how many held out. */
    String describe();

    /**
     * The longest prompt and answer of the training rows, in tokens, for the planner to price in
     * place of the config's bounds (data.max_prompt_tokens, generation.max_new_tokens), which a
     * dataset rarely fills: a call pads each micro-batch to its longest row, not to the bounds.
     */
    Lengths lengths();

    /**
     * Tokens of the longest prompt and of the longest answer; {@link #GENERATED} when the answers
     * are generated (up to generation.max_new_tokens). SFT's rows are priced whole, as prompts.
     */
    record Lengths(int prompt, int answer) {
        public static final int GENERATED = -1;
    }
}
