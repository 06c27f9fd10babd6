package org.sparkrlhf.gpuexec.backend.cpu;

import org.sparkrlhf.gpuexec.backend.CounterRng;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.TokenDistribution;

/** One token from one row of logits, as {@link org.sparkrlhf.gpuexec.backend.Backend#sample} defines it. */
final class Sampler {
    private Sampler() {
    }

    static int pick(float[] logits, int off, int V, SamplingParams p, long seed, int seqId, int step) {
        if (p.greedy()) return TokenDistribution.argmax(logits, off, V);
        double[] w = TokenDistribution.weights(logits, off, V, p);
        return TokenDistribution.draw(w, CounterRng.uniform(seed, seqId, step));
    }
}
