package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class GenerationTest {
    static CpuBackend backend;
    static LlamaModel llama;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
        llama = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
    }

    @AfterAll
    static void stop() {
        llama.close();
        backend.close();
    }

    static Generator.Options sampled(int n, float temperature, int topK, float topP, long seed) {
        return new Generator.Options(n, new SamplingParams(temperature, topK, topP), seed, new int[0], 0, false);
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "tiny-qwen2"})
    void greedyOutputEqualsTransformers(String name) {
        SafeTensorsFile e = Fixtures.expected(name);
        int[] promptShape = e.entry("greedy_prompt").shape();
        int[] outShape = e.entry("greedy_output").shape();
        int[] prompt = e.readInts("greedy_prompt"), expected = e.readInts("greedy_output");
        int B = promptShape[0], Tp = promptShape[1], To = outShape[1];
        int[][] prompts = new int[B][];
        for (int b = 0; b < B; b++) prompts[b] = Arrays.copyOfRange(prompt, b * Tp, (b + 1) * Tp);
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir(name)); Generator g = new Generator(model)) {
            GenerationResult r = g.generate(prompts, Generator.Options.greedy(To - Tp, model.config().eosTokenIds(), 0));
            for (int b = 0; b < B; b++) {
                int[] want = Arrays.copyOfRange(expected, b * To + Tp, (b + 1) * To);
                assertArrayEquals(want, r.tokens()[b], name + " greedy continuation of row " + b);
            }
        }
    }

    @Test
    void kvCacheDecodeLogitsEqualFullForwardLogits() {
        int[] prompt = {81, 213, 287, 262, 424};
        try (Generator g = new Generator(llama)) {
            GenerationResult r = g.generate(new int[][]{prompt},
                    new Generator.Options(6, SamplingParams.GREEDY, 0, new int[0], 0, true));
            int[] all = new int[prompt.length + 6];
            System.arraycopy(prompt, 0, all, 0, prompt.length);
            System.arraycopy(r.tokens()[0], 0, all, prompt.length, 6);
            Batch full = Batch.rightPadded(new int[][]{all}, 0);
            llama.forward(full, false);
            float[] logits = llama.logits();
            int V = llama.config().vocabSize();
            for (int s = 0; s < 6; s++) {
                int t = prompt.length - 1 + s;
                float[] want = Arrays.copyOfRange(logits, t * V, (t + 1) * V);
                double d = Fixtures.maxAbsDiff(want, r.stepLogits()[0][s], null);
                assertTrue(d < 1e-4, "step " + s + " logits differ from the full forward by " + d);
            }
        }
    }

    @Test
    void leftPaddedBatchEqualsEachSequenceAlone() {
        int[][] prompts = {{81, 213, 287}, {111, 377, 80, 333, 459, 267, 199}, {5, 6, 7, 8, 9}};
        Generator.Options o = sampled(8, 0.9f, 50, 0.95f, 1234);
        try (Generator g = new Generator(llama)) {
            GenerationResult batch = g.generate(prompts, o);
            for (int b = 0; b < prompts.length; b++) {
                GenerationResult alone = g.generate(new int[][]{prompts[b]}, new int[]{b}, o);
                assertArrayEquals(alone.tokens()[0], batch.tokens()[b], "sequence " + b);
            }
            GenerationResult greedyBatch = g.generate(prompts, Generator.Options.greedy(8, new int[0], 0));
            for (int b = 0; b < prompts.length; b++) {
                GenerationResult alone = g.generate(new int[][]{prompts[b]}, Generator.Options.greedy(8, new int[0], 0));
                assertArrayEquals(alone.tokens()[0], greedyBatch.tokens()[b], "greedy sequence " + b);
            }
        }
    }

    @Test
    void sameSeedSameTokensDifferentSeedsDiffer() {
        int[][] prompts = {{81, 213, 287, 262}, {111, 377, 80}};
        try (Generator g = new Generator(llama)) {
            GenerationResult a = g.generate(prompts, sampled(16, 1.0f, 0, 1f, 7));
            GenerationResult b = g.generate(prompts, sampled(16, 1.0f, 0, 1f, 7));
            GenerationResult c = g.generate(prompts, sampled(16, 1.0f, 0, 1f, 8));
            assertTrue(Arrays.deepEquals(a.tokens(), b.tokens()), "same seed, same tokens");
            assertFalse(Arrays.deepEquals(a.tokens(), c.tokens()), "different seeds give different tokens");
        }
    }

    @Test
    void topKOneIsGreedy() {
        int[][] prompts = {{81, 213, 287, 262}, {111, 377, 80}};
        try (Generator g = new Generator(llama)) {
            GenerationResult greedy = g.generate(prompts, Generator.Options.greedy(10, new int[0], 0));
            GenerationResult top1 = g.generate(prompts, sampled(10, 1.3f, 1, 1f, 99));
            assertTrue(Arrays.deepEquals(greedy.tokens(), top1.tokens()));
        }
    }

    @Test
    void stopsAtEosPerSequence() {
        int[][] prompts = {{81, 213, 287, 262}, {111, 377, 80}};
        try (Generator g = new Generator(llama)) {
            GenerationResult free = g.generate(prompts, Generator.Options.greedy(10, new int[0], 0));
            // declare the third greedy token of row 0 an end-of-sequence token: row 0 stops there
            int eos = free.tokens()[0][2];
            GenerationResult r = g.generate(prompts, Generator.Options.greedy(10, new int[]{eos}, 0));
            assertArrayEquals(Arrays.copyOf(free.tokens()[0], 3), r.tokens()[0]);
            assertTrue(r.stoppedAtEos()[0]);
            int firstEos = -1;
            for (int i = 0; i < free.tokens()[1].length && firstEos < 0; i++) if (free.tokens()[1][i] == eos) firstEos = i;
            int[] want = firstEos < 0 ? free.tokens()[1] : Arrays.copyOf(free.tokens()[1], firstEos + 1);
            assertArrayEquals(want, r.tokens()[1]);
            assertEquals(firstEos >= 0, r.stoppedAtEos()[1]);
        }
    }
}
