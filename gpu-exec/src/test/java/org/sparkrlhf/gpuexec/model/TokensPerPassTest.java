package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A bound on the tokens of an inference-only pass splits a forward's and a prefill's rows into
 * passes with the same results and a smaller peak of live bytes. A row's products and attention do
 * not read the other rows, but a matrix product's blocking may depend on its row count, so values
 * agree to fp32 rounding rather than in every bit; sampled tokens are the same. The bound is a few
 * ulps of the largest values (log-probs near -10): OpenBLAS's kernels for AVX-512 cores changed a
 * log-prob of 6.2 by 3 ulps (1.4e-6) between the two row counts.
 */
class TokensPerPassTest {
    static final int[][] SEQS = {{1, 17, 300, 42, 5, 9, 77}, {1, 3, 250, 8}, {1, 99, 98, 97, 96}, {1, 5}, {1, 7, 11, 13, 17, 19}};
    static final Batch BATCH = Batch.rightPadded(SEQS, 0);
    static final float TOL = 1e-5f;

    @Test
    void passesSplitRowsInOrderAndKeepOneRowAtLeast() {
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            model.maxTokensPerPass(2 * BATCH.time());
            List<Batch> passes = model.passes(List.of(BATCH));
            assertEquals(List.of(2, 2, 1), passes.stream().map(Batch::batch).toList());
            assertArrayEquals(java.util.Arrays.copyOfRange(BATCH.ids(), 2 * BATCH.time(), 4 * BATCH.time()), passes.get(1).ids());
            model.maxTokensPerPass(1);
            assertEquals(5, model.passes(List.of(BATCH)).size(), "a row longer than the bound is a pass of its own");
            assertThrows(IllegalArgumentException.class, () -> model.maxTokensPerPass(0));
        }
    }

    @Test
    void aForwardInPassesGivesTheSameLogprobsWithLessMemory() {
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            long base = backend.liveBytes();
            backend.resetPeakBytes();
            TokenStats whole = model.forward(List.of(BATCH, BATCH.rows(1, 3)), true, false).get(0);
            long wholePeak = backend.peakBytes() - base;
            model.releaseActivations();
            model.maxTokensPerPass(BATCH.time());
            backend.resetPeakBytes();
            List<TokenStats> split = model.forward(List.of(BATCH, BATCH.rows(1, 3)), true, false);
            long splitPeak = backend.peakBytes() - base;
            assertArrayEquals(whole.logprobs(), split.get(0).logprobs(), TOL);
            assertArrayEquals(whole.entropies(), split.get(0).entropies(), TOL);
            assertEquals(BATCH.batch(), split.get(0).batch());
            assertArrayEquals(java.util.Arrays.copyOfRange(whole.logprobs(), 6, 18), split.get(1).logprobs(), TOL);
            assertTrue(splitPeak * 4 < wholePeak, "one row a pass peaks at " + splitPeak + " bytes, five rows at " + wholePeak);
            model.releaseActivations();
            assertEquals(base, backend.liveBytes());
        }
    }

    @Test
    void valuesAndScoresInPassesAreTheSame() {
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama-reward"))) {
            float[] values = model.values(List.of(BATCH), false).get(0);
            float[] scores = model.scores(List.of(BATCH), false).get(0);
            model.maxTokensPerPass(2 * BATCH.time());
            assertArrayEquals(values, model.values(List.of(BATCH), false).get(0), TOL);
            assertArrayEquals(scores, model.scores(List.of(BATCH), false).get(0), TOL);
        }
    }

    @Test
    void aPrefillInPassesGeneratesTheSameTokensAndLogits() {
        int[][] prompts = {{1, 17, 300, 42}, {1, 3}, {1, 99, 98, 97, 96, 95}, {1, 5, 6}};
        Generator.Options o = new Generator.Options(6, new SamplingParams(0.9f, 0, 1f), 7, new int[0], 0, true);
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            long base = backend.liveBytes();
            GenerationResult whole;
            backend.resetPeakBytes();
            try (Generator g = new Generator(model)) {
                whole = g.generate(prompts, o);
            }
            long wholePeak = backend.peakBytes() - base;
            model.maxTokensPerPass(6);
            backend.resetPeakBytes();
            GenerationResult split;
            try (Generator g = new Generator(model)) {
                split = g.generate(prompts, o);
            }
            long splitPeak = backend.peakBytes() - base;
            assertEquals(base, backend.liveBytes(), "a closed generator holds nothing");
            for (int b = 0; b < prompts.length; b++) {
                assertArrayEquals(whole.tokens()[b], split.tokens()[b], "row " + b);
                for (int s = 0; s < whole.tokens()[b].length; s++) assertArrayEquals(whole.stepLogits()[b][s], split.stepLogits()[b][s], TOL, "row " + b + ", step " + s);
            }
            assertTrue(splitPeak < wholePeak, "one row a pass peaks at " + splitPeak + " bytes, four rows at " + wholePeak);
        }
    }
}
