package org.sparkrlhf.bench;

import org.sparkrlhf.gpuexec.model.ModelConfig;

/** The model and workload a benchmark run measures, printed with its figures. */
record BenchShape(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads,
                  int batch, int seq, int newTokens, int iterations) {

    /** The benchmarks' models: 9m (8.94M parameters) and 134m (the GPU benchmark's 134M LLaMA). */
    static BenchShape named(String name, int iterations) {
        return switch (name) {
            case "9m" -> new BenchShape(8192, 256, 688, 6, 8, 8, 8, 64, 64, iterations);
            case "134m" -> new BenchShape(32000, 768, 2048, 12, 12, 12, 8, 64, 64, iterations);
            default -> throw new IllegalArgumentException("model " + name + ": expected 9m or 134m");
        };
    }

    ModelConfig config() {
        return ModelConfig.llama(vocab, hidden, intermediate, layers, heads, kvHeads, Math.max(1024, seq + newTokens));
    }

    String describe(long params) {
        return String.format("LLaMA: %d layers, hidden %d, %d heads (%d kv), intermediate %d, vocab %d, untied: %.2fM parameters;"
                        + " batch %d x %d tokens; decode %d prompts of %d + %d new tokens (greedy); %d timed iterations (median wall, mean CPU)",
                layers, hidden, heads, kvHeads, intermediate, vocab, params / 1e6, batch, seq, batch, seq, newTokens, iterations);
    }
}
