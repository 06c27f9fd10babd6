package org.sparkrlhf.planner.spec;

/**
 * The batch of one iteration: {@code batchTokens} tokens of sequences {@code promptLen + genLen} long,
 * i.e. {@code batchTokens / (promptLen + genLen)} sequences (ReaL's setups: 2^17 tokens a batch). Every
 * call of the graph processes all of them; generation decodes {@code genLen} new tokens for each, with
 * self-speculative decoding when {@code speculation} is not null.
 */
public record Workload(int promptLen, int genLen, long batchTokens, Speculation speculation) {
    /** Plain decoding. */
    public Workload(int promptLen, int genLen, long batchTokens) {
        this(promptLen, genLen, batchTokens, null);
    }

    public Workload {
        if (promptLen < 1 || genLen < 0 || batchTokens < 1) {
            throw new IllegalArgumentException("prompt length >= 1, generation length >= 0 and batch tokens >= 1 needed, got "
                    + promptLen + ", " + genLen + ", " + batchTokens);
        }
        if (batchTokens < promptLen + genLen) {
            throw new IllegalArgumentException("a batch of " + batchTokens + " tokens holds no sequence of "
                    + (promptLen + genLen) + " tokens");
        }
    }

    public int seqLen() {
        return promptLen + genLen;
    }

    /** Sequences in the batch. */
    public long sequences() {
        return batchTokens / seqLen();
    }

    /** Tokens actually in the batch (whole sequences). */
    public long tokens() {
        return sequences() * seqLen();
    }
}
