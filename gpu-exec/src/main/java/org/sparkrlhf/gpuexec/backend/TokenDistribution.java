package org.sparkrlhf.gpuexec.backend;

import java.util.Arrays;

/**
 * The distribution {@link Backend#sample} draws from, on the host: the greedy pick, and the
 * unnormalised weights that temperature, top-k and top-p leave (see {@link SamplingParams}). The
 * CPU backend's sampler and speculative decoding (which needs the whole distributions p and q,
 * not only a draw) share this one implementation, so their distributions are the same numbers.
 */
public final class TokenDistribution {
    private TokenDistribution() {
    }

    /** The greedy pick: the first id among equal maxima of logits[off, off + V). */
    public static int argmax(float[] logits, int off, int V) {
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

    /**
     * Weights w_j = exp(z_j - max z), z = logits / temperature, for the kept tokens and 0 for the
     * dropped ones (p must not be greedy); their sum is the normaliser.
     */
    public static double[] weights(float[] logits, int off, int V, SamplingParams p) {
        if (p.greedy()) throw new IllegalArgumentException("greedy sampling has no weights, it picks the argmax");
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
            boolean[] drop = new boolean[V];
            for (int r = 0; r < n; r++) {
                int j = kept[r];
                if (r > 0 && before / total >= p.topP()) drop[j] = true;
                before += w[j];
            }
            for (int j = 0; j < V; j++) if (drop[j]) w[j] = 0;
        }
        return w;
    }

    /**
     * The draw of {@link Backend#sample} from weights w (0 = dropped) with uniform u in [0, 1):
     * the first id whose running sum of w exceeds u * sum(w), in ascending id order (the last
     * kept id if none does).
     */
    public static int draw(double[] w, double u) {
        double total = 0;
        for (double x : w) total += x;
        double threshold = u * total;
        double running = 0;
        int last = -1;
        for (int j = 0; j < w.length; j++) {
            if (w[j] == 0) continue;
            running += w[j];
            last = j;
            if (running > threshold) return j;
        }
        return last;
    }
}
