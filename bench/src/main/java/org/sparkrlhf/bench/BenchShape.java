package org.sparkrlhf.bench;

import org.sparkrlhf.gpuexec.model.ModelConfig;

/** The model and workload a benchmark run measures, printed with its figures. */
record BenchShape(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads,
                  int batch, int seq, int newTokens, int iterations) {

    ModelConfig config() {
        return ModelConfig.llama(vocab, hidden, intermediate, layers, heads, kvHeads, Math.max(1024, seq + newTokens));
    }

    String describe(long params) {
        return String.format("LLaMA: %d layers, hidden %d, %d heads (%d kv), intermediate %d, vocab %d, untied: %.2fM parameters;"
                        + " batch %d x %d tokens; decode %d prompts of %d + %d new tokens (greedy); %d timed iterations (median)",
                layers, hidden, heads, kvHeads, intermediate, vocab, params / 1e6, batch, seq, batch, seq, newTokens, iterations);
    }
}
