package org.sparkrlhf.jobs.graph;

/**
 * Prompt + response token rows: the value of {@code packed_input_ids} and of {@code prompt_mask}
 * (the prompt tokens are the mask). {@code stopped[i]} says whether response i ended with eos
 * (then its last token is the eos); SFT and preference rows have every response stopped.
 */
public record Sequences(int[][] prompts, int[][] responses, boolean[] stopped) {
    public Sequences {
        if (prompts.length != responses.length || prompts.length != stopped.length) {
            throw new IllegalArgumentException(prompts.length + " prompts, " + responses.length + " responses, "
                    + stopped.length + " stop flags");
        }
    }

    public int size() {
        return prompts.length;
    }

    /** Response tokens over all rows. */
    public long responseTokens() {
        long n = 0;
        for (int[] r : responses) {
            n += r.length;
        }
        return n;
    }

    /** Prompt tokens over all rows. */
    public long promptTokens() {
        long n = 0;
        for (int[] p : prompts) {
            n += p.length;
        }
        return n;
    }

    /** Response {@code i} without its closing eos. */
    public int[] responseText(int i) {
        return stopped[i] ? java.util.Arrays.copyOf(responses[i], responses[i].length - 1) : responses[i];
    }
}
