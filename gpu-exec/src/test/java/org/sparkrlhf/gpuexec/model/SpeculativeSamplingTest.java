package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.TokenDistribution;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Speculative sampling draws from the full model's distribution: the joint distribution of the
 * first three new tokens over many sequences (a tiny vocabulary, fixed seed) against the exact one
 * computed from full forwards with the same temperature, top-k and top-p, by a chi-square test.
 */
@Timeout(300)
class SpeculativeSamplingTest {
    static final int V = 5, DRAWS = 20000, NEW = 3;
    static final int[] PROMPT = {1, 2, 3};
    static CpuBackend backend;
    static LlamaModel model;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
        model = LlamaModel.random(backend, ModelConfig.llama(V, 16, 32, 3, 2, 1, 64), DType.F32, 21, 0.5f);
    }

    @AfterAll
    static void stop() {
        model.close();
        backend.close();
    }

    @ParameterizedTest
    @CsvSource({"1.0, 0, 1.0", "0.7, 3, 1.0", "1.3, 0, 0.8", "0.9, 4, 0.85"})
    void jointOfNewTokensMatchesTheFullModel(float temperature, int topK, float topP) {
        SamplingParams sp = new SamplingParams(temperature, topK, topP);
        double[] exact = exactJoint(sp);
        int[][] prompts = new int[DRAWS][];
        Arrays.fill(prompts, PROMPT);
        long[] counts = new long[exact.length];
        try (S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 2, 2), 4)) {
            SpeculativeGenerator.Result r = new SpeculativeGenerator(model, draft)
                    .generate(prompts, new Generator.Options(NEW, sp, 12345, new int[0], 0, false));
            SpeculativeStats s = r.stats();
            assertTrue(s.acceptedTokens() > 0 && s.acceptedTokens() < s.draftedTokens(), "both accept and reject paths: " + s);
            for (int[] t : r.generation().tokens()) {
                assertEquals(NEW, t.length);
                counts[(t[0] * V + t[1]) * V + t[2]]++;
            }
        }
        for (int c = 0; c < exact.length; c++) {
            assertTrue(exact[c] > 0 || counts[c] == 0, "drew " + counts[c] + " times a sequence of probability 0 (cell " + c + ")");
        }
        // chi-square over the cells expected at least 5 times, the rest pooled into one cell
        double chi2 = 0, pooledExpected = 0, pooledCount = 0;
        int cells = 0;
        for (int c = 0; c < exact.length; c++) {
            double e = exact[c] * DRAWS;
            if (e >= 5) {
                chi2 += (counts[c] - e) * (counts[c] - e) / e;
                cells++;
            } else {
                pooledExpected += e;
                pooledCount += counts[c];
            }
        }
        if (pooledExpected >= 5) {
            chi2 += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
            cells++;
        }
        int df = cells - 1;
        // Wilson-Hilferty: the chi-square quantile at 1 - 1e-3 (z = 3.09)
        double h = 2.0 / (9 * df), critical = df * Math.pow(1 - h + 3.09 * Math.sqrt(h), 3);
        assertTrue(chi2 < critical, "chi-square " + chi2 + " over " + df + " degrees of freedom, critical " + critical);
    }

    /** P(t1, t2, t3 | prompt) from full forwards over every (t1, t2) continuation, as [V^3]. */
    static double[] exactJoint(SamplingParams sp) {
        int T = PROMPT.length + 2;
        int[][] rows = new int[V * V][];
        for (int a = 0; a < V; a++) {
            for (int b = 0; b < V; b++) {
                int[] r = Arrays.copyOf(PROMPT, T);
                r[T - 2] = a;
                r[T - 1] = b;
                rows[a * V + b] = r;
            }
        }
        model.forward(Batch.rightPadded(rows, 0), false);
        float[] logits = model.logits();
        double[] joint = new double[V * V * V];
        for (int a = 0; a < V; a++) {
            double[] p1 = probs(logits, ((0) * T + T - 3) * V, sp);
            double[] p2 = probs(logits, ((a * V) * T + T - 2) * V, sp);
            for (int b = 0; b < V; b++) {
                double[] p3 = probs(logits, ((a * V + b) * T + T - 1) * V, sp);
                for (int c = 0; c < V; c++) joint[(a * V + b) * V + c] = p1[a] * p2[b] * p3[c];
            }
        }
        return joint;
    }

    static double[] probs(float[] logits, int off, SamplingParams sp) {
        double[] w = TokenDistribution.weights(logits, off, V, sp);
        double total = Arrays.stream(w).sum();
        for (int j = 0; j < V; j++) w[j] /= total;
        return w;
    }
}
