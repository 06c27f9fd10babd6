package org.sparkrlhf.gpuexec.backend.cpu;

import org.sparkrlhf.gpuexec.backend.CounterRng;
import org.sparkrlhf.gpuexec.backend.SamplingParams;

import java.util.Arrays;

/** One token from one row of logits, as {@link org.sparkrlhf.gpuexec.backend.Backend#sample} defines it. */
final class Sampler {
    private Sampler() {
    }

    static int pick(float[] logits, int off, int V, SamplingParams p, long seed, int seqId, int step) {
        if (p.greedy()) {
            int best = 0;
            float bestValue = logits[off];
            for (int j = 1; j < V; j++) {
                if (logits[off + j] > bestValue) {
                    bestValue = logits[off + j];
                    best = j;
                }
            }
            return best;
        }
        float invT = 1f / p.temperature();
        float[] z = new float[V];
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < V; j++) {
            z[j] = logits[off + j] * invT;
            if (z[j] > max) max = z[j];
        }
        boolean[] keep = new boolean[V];
        Arrays.fill(keep, true);
        if (p.topK() > 0 && p.topK() < V) {
            float[] sorted = z.clone();
            Arrays.sort(sorted);
            float kth = sorted[V - p.topK()];
            for (int j = 0; j < V; j++) keep[j] = z[j] >= kth;
        }
        double[] w = new double[V];
        double total = 0;
        for (int j = 0; j < V; j++) {
            if (keep[j]) {
                w[j] = Math.exp(z[j] - max);
                total += w[j];
            }
        }
        if (p.topP() < 1f) {
            Integer[] order = new Integer[V];
            int n = 0;
            for (int j = 0; j < V; j++) if (keep[j]) order[n++] = j;
            Integer[] kept = Arrays.copyOf(order, n);
            Arrays.sort(kept, (x, y) -> w[x] != w[y] ? Double.compare(w[y], w[x]) : Integer.compare(x, y));
            double before = 0;
            for (int r = 0; r < n; r++) {
                int j = kept[r];
                if (r > 0 && before / total >= p.topP()) keep[j] = false;
                before += w[j];
            }
            total = 0;
            for (int j = 0; j < V; j++) if (keep[j]) total += w[j];
        }
        double threshold = CounterRng.uniform(seed, seqId, step) * total;
        double running = 0;
        int last = -1;
        for (int j = 0; j < V; j++) {
            if (!keep[j]) continue;
            running += w[j];
            last = j;
            if (running > threshold) return j;
        }
        return last;
    }
}
