package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.RopeScaling;

/** Small random-model configs for the parallel tests: GQA (4 heads, 2 kv heads), every bias, odd vocabulary and intermediate sizes. */
final class ParallelConfigs {
    private ParallelConfigs() {
    }

    /** A causal LM with q/k/v, o and MLP biases; layer 1 has a sliding window of 3. */
    static ModelConfig gqa(boolean tied, int layers) {
        return gqa(tied, layers, 61);
    }

    /**
     * {@link #gqa(boolean, int)} with {@code vocab} tokens: one that two tensor ranks split evenly
     * moves the logits and their gradient on the device, an odd one through the host.
     */
    static ModelConfig gqa(boolean tied, int layers, int vocab) {
        int[] windows = new int[layers];
        if (layers > 1) windows[1] = 3;
        return new ModelConfig("LlamaForCausalLM", "llama", ModelConfig.Head.CAUSAL_LM, vocab, 16, 37, layers,
                4, 2, 4, 1e-5f, 10000.0, RopeScaling.DEFAULT, 64, true, true, true, tied, windows, 0, 1, new int[]{2}, null);
    }

    /** The same trunk with a score head (critic, reward model). */
    static ModelConfig score(int layers) {
        return gqa(true, layers).withHead(ModelConfig.Head.SCORE);
    }
}
