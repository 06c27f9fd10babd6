package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** S3D speculative generation against plain generation: the same greedy tokens, the same cache. */
@Timeout(300)
class SpeculativeGeneratorTest {
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static final int[][] PROMPTS = {{81, 213, 287}, {111, 377, 80, 333, 459, 267, 199}, {5, 6, 7, 8, 9}, {300}};

    @ParameterizedTest
    @CsvSource({"tiny-llama, 1, 2, 1", "tiny-llama, 1, 2, 3", "tiny-llama, 0, 0, 4", "tiny-qwen2, 1, 2, 2", "tiny-qwen2, 0, 1, 5"})
    void greedyTokensEqualPlainGreedyOnFixtures(String name, int skipFrom, int skipTo, int k) {
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir(name));
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(skipFrom, skipTo, k), 11)) {
            assertGreedyEqual(model, draft, PROMPTS, 24);
        }
    }

    @Test
    void greedyTokensEqualPlainGreedyOnRandomModelsWithEosStops() {
        // a small vocabulary makes random drafts right often: steps accept 0, some and all drafts
        ModelConfig c = ModelConfig.llama(7, 32, 48, 4, 4, 2, 128);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.F32, 5, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 3), 3)) {
            int[][] prompts = {{1, 2, 3}, {4, 5, 6, 1, 2, 0, 3}, {6}, {2, 2, 5, 4}, {3, 1}};
            SpeculativeStats stats = assertGreedyEqual(model, draft, prompts, 40);
            assertTrue(stats.acceptedTokens() > 0 && stats.acceptedTokens() < stats.draftedTokens(), stats.toString());
            try (Generator g = new Generator(model)) {
                GenerationResult free = g.generate(prompts, Generator.Options.greedy(20, new int[0], 0));
                int eos = free.tokens()[0][5];
                Generator.Options o = Generator.Options.greedy(20, new int[]{eos}, 0);
                GenerationResult plain = g.generate(prompts, o);
                GenerationResult spec = new SpeculativeGenerator(model, draft).generate(prompts, o).generation();
                assertTrue(Arrays.deepEquals(plain.tokens(), spec.tokens()), "tokens with EOS " + eos);
                assertArrayEquals(plain.stoppedAtEos(), spec.stoppedAtEos());
                assertTrue(spec.stoppedAtEos()[0]);
            }
        }
    }

    /** The engine's bf16 mode (activations and KV caches stored as bf16, emulated on the CPU): both decoders run on it. */
    @ParameterizedTest
    @CsvSource({"tiny-llama, 1, 2, 3", "tiny-qwen2, 0, 1, 2"})
    void greedyTokensEqualPlainGreedyInBf16ActivationMode(String name, int skipFrom, int skipTo, int k) {
        try (CpuBackend bf16 = new CpuBackend().storeActivationsAs(DType.BF16);
             LlamaModel model = LlamaModel.load(bf16, Fixtures.dir(name));
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(skipFrom, skipTo, k), 11)) {
            assertGreedyEqual(model, draft, PROMPTS, 24);
        }
        ModelConfig c = ModelConfig.llama(7, 32, 48, 4, 4, 2, 128);
        try (CpuBackend bf16 = new CpuBackend().storeActivationsAs(DType.BF16);
             LlamaModel model = LlamaModel.random(bf16, c, DType.F32, 5, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 3), 3)) {
            SpeculativeStats stats = assertGreedyEqual(model, draft, new int[][]{{1, 2, 3}, {4, 5, 6, 1, 2, 0, 3}, {6}}, 40);
            assertTrue(stats.acceptedTokens() > 0, stats.toString());
        }
    }

    @Test
    void greedyTokensEqualPlainGreedyWithBf16Weights() {
        ModelConfig c = ModelConfig.llama(9, 32, 48, 4, 4, 2, 128);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.BF16, 13, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(2, 3, 2), 6)) {
            assertGreedyEqual(model, draft, new int[][]{{1, 2, 3}, {8, 7}, {4}}, 30);
        }
    }

    /**
     * The cache after rejected drafts: every emitted token's logits (read from the verification
     * over the rolled-back cache) equal plain decoding's logits at that step.
     */
    @ParameterizedTest
    @CsvSource({"F32", "BF16"})
    void rolledBackCacheGivesPlainDecodingsLogits(DType activations) {
        // in bf16 mode both decode on bf16 buffers and caches: a rounding apart (fp32 buffers) would show here
        ModelConfig c = ModelConfig.llama(7, 32, 48, 3, 4, 2, 128);
        try (CpuBackend backend = new CpuBackend().storeActivationsAs(activations);
             LlamaModel model = LlamaModel.random(backend, c, DType.F32, 9, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 2, 4), 1);
             Generator g = new Generator(model)) {
            int[][] prompts = {{1, 2, 3, 4}, {5}, {6, 0, 1}};
            Generator.Options o = new Generator.Options(30, SamplingParams.GREEDY, 0, new int[0], 0, true);
            GenerationResult plain = g.generate(prompts, o);
            SpeculativeGenerator.Result r = new SpeculativeGenerator(model, draft).generate(prompts, o);
            assertTrue(r.stats().acceptedTokens() < r.stats().draftedTokens(), "some drafts must be rejected: " + r.stats());
            for (int b = 0; b < prompts.length; b++) {
                assertArrayEquals(plain.tokens()[b], r.generation().tokens()[b]);
                for (int s = 0; s < plain.tokens()[b].length; s++) {
                    double d = Fixtures.maxAbsDiff(plain.stepLogits()[b][s], r.generation().stepLogits()[b][s], null);
                    assertTrue(d < 1e-4, "sequence " + b + " step " + s + ": logits differ by " + d);
                }
            }
        }
    }

    @Test
    void sequenceTokensDoNotDependOnTheBatch() {
        ModelConfig c = ModelConfig.llama(9, 32, 48, 3, 4, 2, 128);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.F32, 2, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 2, 2), 1)) {
            SpeculativeGenerator sg = new SpeculativeGenerator(model, draft);
            int[][] prompts = {{1, 2, 3, 4}, {5}, {6, 0, 1}};
            Generator.Options o = new Generator.Options(12, new SamplingParams(0.9f, 5, 0.95f), 77, new int[0], 0, false);
            GenerationResult batch = sg.generate(prompts, o).generation();
            for (int b = 0; b < prompts.length; b++) {
                GenerationResult alone = sg.generate(new int[][]{prompts[b]}, new int[]{b}, o).generation();
                assertArrayEquals(alone.tokens()[0], batch.tokens()[b], "sequence " + b);
            }
        }
    }

    static SpeculativeStats assertGreedyEqual(LlamaModel model, S3dDraft draft, int[][] prompts, int maxNew) {
        Generator.Options o = Generator.Options.greedy(maxNew, new int[0], 0);
        try (Generator g = new Generator(model)) {
            GenerationResult plain = g.generate(prompts, o);
            SpeculativeGenerator.Result spec = new SpeculativeGenerator(model, draft).generate(prompts, o);
            for (int b = 0; b < prompts.length; b++) {
                assertArrayEquals(plain.tokens()[b], spec.generation().tokens()[b], "sequence " + b);
            }
            SpeculativeStats s = spec.stats();
            assertEquals(s.sequenceSteps() * draft.config().draftTokens(), s.draftedTokens());
            return s;
        }
    }
}
