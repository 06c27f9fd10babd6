package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.CounterRng;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.TokenDistribution;

/**
 * Drafting and verification of one sequence's step on the host. Greedy: a draft token is accepted
 * while it equals the verifier's argmax, and the verifier's argmax follows (the correction, or the
 * bonus token when every draft is accepted), so the tokens are plain greedy decoding's. Sampling
 * (Leviathan et al. 2023; Chen et al. 2023): draft token d ~ q is accepted with probability
 * min(1, p(d) / q(d)), else the token is drawn from normalise(max(0, p - q)) and the step ends;
 * all accepted, a bonus token is drawn from the verifier's last p. p and q are the distributions
 * after the same temperature, top-k and top-p, so each token is distributed as plain sampling's.
 */
final class SpeculativeSampling {
    private SpeculativeSampling() {
    }

    /** The uniform draws of one sequence: draw n is CounterRng.uniform(seed, seqId, n). */
    static final class Draws {
        private final long seed;
        private final int seqId;
        private int next;

        Draws(long seed, int seqId) {
            this.seed = seed;
            this.seqId = seqId;
        }

        double next() {
            return CounterRng.uniform(seed, seqId, next++);
        }
    }

    /** A token from the distribution of logits[off, off + V) (greedy: the argmax). */
    static int pick(float[] logits, int off, int V, SamplingParams sp, Draws draws) {
        if (sp.greedy()) return TokenDistribution.argmax(logits, off, V);
        return TokenDistribution.draw(TokenDistribution.weights(logits, off, V, sp), draws.next());
    }

    /**
     * The tokens a step emits: the accepted prefix of drafts, then the verifier's token.
     * draftLogits rows [draftOff + i * V) give q_i of drafts[i] (unused when greedy); verifyLogits
     * rows [verifyOff + i * V) give p_i, the verifier's distribution after drafts[0..i).
     */
    static int[] verify(int[] drafts, float[] draftLogits, int draftOff, float[] verifyLogits, int verifyOff, int V,
                        SamplingParams sp, Draws draws) {
        int k = drafts.length;
        int[] out = new int[k + 1];
        for (int i = 0; i < k; i++) {
            int pRow = verifyOff + i * V;
            if (sp.greedy()) {
                int best = TokenDistribution.argmax(verifyLogits, pRow, V);
                out[i] = best;
                if (best != drafts[i]) return java.util.Arrays.copyOf(out, i + 1);
                continue;
            }
            double[] p = normalised(TokenDistribution.weights(verifyLogits, pRow, V, sp));
            double[] q = normalised(TokenDistribution.weights(draftLogits, draftOff + i * V, V, sp));
            int d = drafts[i];
            if (draws.next() * q[d] < p[d]) {
                out[i] = d;
                continue;
            }
            double[] residual = new double[V];
            double mass = 0;
            for (int j = 0; j < V; j++) {
                residual[j] = Math.max(0, p[j] - q[j]);
                mass += residual[j];
            }
            // mass 0 means p == q, where d was accepted with certainty; guard against rounding
            out[i] = TokenDistribution.draw(mass > 0 ? residual : p, draws.next());
            return java.util.Arrays.copyOf(out, i + 1);
        }
        out[k] = pick(verifyLogits, verifyOff + k * V, V, sp, draws);
        return out;
    }

    /** Draft tokens from the draft's rows [off + i * V) (greedy: argmax; else drawn from q_i). */
    static int[] draft(float[] draftLogits, int off, int V, int k, SamplingParams sp, Draws draws) {
        int[] d = new int[k];
        for (int i = 0; i < k; i++) d[i] = pick(draftLogits, off + i * V, V, sp, draws);
        return d;
    }

    private static double[] normalised(double[] w) {
        double total = 0;
        for (double x : w) total += x;
        double[] p = new double[w.length];
        for (int j = 0; j < w.length; j++) p[j] = w[j] / total;
        return p;
    }
}
