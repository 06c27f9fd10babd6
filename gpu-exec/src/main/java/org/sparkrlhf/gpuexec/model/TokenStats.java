package org.sparkrlhf.gpuexec.model;

/**
 * Per-token results of a causal LM forward, [B, T - 1] row-major: logprobs[b, t] =
 * log p(ids[b, t + 1] | ids[b, 0..t]) and entropies[b, t] the entropy of that next-token
 * distribution (null when not asked for). Positions whose target is padding hold finite values
 * that callers mask out.
 */
public record TokenStats(int batch, int steps, float[] logprobs, float[] entropies) {
    public float logprob(int b, int t) {
        return logprobs[b * steps + t];
    }
}
