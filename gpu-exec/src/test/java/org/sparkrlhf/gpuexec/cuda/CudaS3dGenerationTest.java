package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.SpeculativeGenerator;
import org.sparkrlhf.gpuexec.model.SpeculativeStats;

/**
 * S3D speculative decoding on the GPU, in fp32 and bf16 modes, against plain greedy decoding on the
 * same backend (the CPU's SpeculativeGeneratorTest, on CUDA), with its draft and verification
 * forwards recorded as graphs and replayed.
 *
 * <p>On the CPU both decoders give bit-equal logits; on the GPU the verification multiplies
 * B x (k + 1) rows where plain decoding multiplies B, and cuBLAS may sum those in another order, so
 * a sequence's tokens are compared exactly up to its first near tie: a step whose plain logits'
 * two largest differ by less than the mode's tolerance (1e-4 in fp32, 2e-2 in bf16, of max(1,
 * largest |logit|), CudaModelTest's bounds), after which either token is greedy decoding's.
 */
@Timeout(600)
class CudaS3dGenerationTest {
    static CudaBackend fp32, bf16;

    @BeforeAll
    static void start() {
        Gpu.assumeGpu();
        fp32 = new CudaBackend(0, Precision.FP32);
        bf16 = new CudaBackend(0, Precision.BF16);
    }

    @AfterAll
    static void stop() {
        if (bf16 != null) bf16.close();
        if (fp32 != null) fp32.close();
    }

    static CudaBackend gpu(Precision p) {
        return p == Precision.FP32 ? fp32 : bf16;
    }

    static double tolerance(Precision p) {
        return p == Precision.FP32 ? 1e-4 : 2e-2;
    }

    static final int[][] PROMPTS = {{81, 213, 287}, {111, 377, 80, 333, 459, 267, 199}, {5, 6, 7, 8, 9}, {300}};

    /** GQA (4 heads, 2 kv heads of 16) with a vocabulary of 7: random drafts are right often, so steps accept 0, some and all. */
    static final ModelConfig GQA = ModelConfig.llama(7, 64, 96, 4, 4, 2, 128);
    static final int[][] GQA_PROMPTS = {{1, 2, 3}, {4, 5, 6, 1, 2, 0, 3}, {6}, {2, 2, 5, 4}, {3, 1}};

    @ParameterizedTest
    @CsvSource({"tiny-llama, 1, 2, 3, FP32", "tiny-llama, 1, 2, 3, BF16", "tiny-qwen2, 0, 1, 2, FP32", "tiny-qwen2, 0, 1, 2, BF16"})
    void greedyTokensEqualPlainGreedyOnFixtures(String name, int skipFrom, int skipTo, int k, Precision p) {
        DType weights = p == Precision.FP32 ? DType.F32 : DType.BF16;
        try (LlamaModel model = LlamaModel.load(gpu(p), Fixtures.dir(name), weights);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(skipFrom, skipTo, k), 11)) {
            assertGreedyEqual(name + " " + p, model, draft, PROMPTS, 24, p);
        }
    }

    @ParameterizedTest
    @CsvSource({"FP32", "BF16"})
    void greedyTokensEqualPlainGreedyOnARandomGqaModel(Precision p) {
        try (LlamaModel model = LlamaModel.random(gpu(p), GQA, DType.F32, 5, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 3), 3)) {
            SpeculativeStats s = assertGreedyEqual("random GQA " + p, model, draft, GQA_PROMPTS, 40, p);
            // sequences accept different lengths: some steps keep drafts, some reject one
            assertTrue(s.acceptedTokens() > 0 && s.rejectingSteps() > 0, s.toString());
        }
    }

    /**
     * The cache after rejected drafts: every emitted token's logits (the verification's, over the
     * rolled-back cache) are those of one fresh forward over the prompt and the tokens before it.
     */
    @ParameterizedTest
    @CsvSource({"FP32", "BF16"})
    void rolledBackCacheGivesAFreshPrefillsLogits(Precision p) {
        CudaBackend gpu = gpu(p);
        try (LlamaModel model = LlamaModel.random(gpu, GQA, DType.F32, 9, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 2, 4), 1)) {
            int[][] prompts = {{1, 2, 3, 4}, {5}, {6, 0, 1}};
            Generator.Options o = new Generator.Options(30, SamplingParams.GREEDY, 0, new int[0], 0, true);
            SpeculativeGenerator.Result r = new SpeculativeGenerator(model, draft).generate(prompts, o);
            assertTrue(r.stats().acceptedTokens() < r.stats().draftedTokens(), "some drafts must be rejected: " + r.stats());
            int[][] tokens = r.generation().tokens();
            int[][] seqs = new int[prompts.length][];
            for (int b = 0; b < prompts.length; b++) {
                seqs[b] = Arrays.copyOf(prompts[b], prompts[b].length + tokens[b].length);
                System.arraycopy(tokens[b], 0, seqs[b], prompts[b].length, tokens[b].length);
            }
            Batch teacher = Batch.rightPadded(seqs, 0);
            model.forward(teacher, false);
            float[] fresh = model.logits();
            int V = GQA.vocabSize();
            double worst = 0;
            for (int b = 0; b < prompts.length; b++) {
                for (int s = 0; s < tokens[b].length; s++) {
                    int at = b * teacher.time() + prompts[b].length - 1 + s;
                    float[] want = Arrays.copyOfRange(fresh, at * V, (at + 1) * V);
                    double d = Gpu.relDiff(want, r.generation().stepLogits()[b][s], null);
                    worst = Math.max(worst, d);
                    assertTrue(d <= tolerance(p), p + " sequence " + b + " step " + s + ": logits differ from a fresh prefill's by " + d);
                }
            }
            System.out.printf("S3D %s: rolled-back cache's logits against a fresh prefill's, worst %.3g of max(1, largest logit)%n", p, worst);
        }
    }

    /**
     * The recorded draft and verification forwards replayed step after step give what running
     * their ops one by one gives, and the call releases its graphs.
     */
    @ParameterizedTest
    @CsvSource({"FP32", "BF16"})
    void replayedGraphsGiveTheUnrecordedForwardsTokens(Precision p) {
        CudaBackend gpu = gpu(p);
        try (LlamaModel model = LlamaModel.random(gpu, GQA, DType.F32, 5, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 3), 3)) {
            Generator.Options o = new Generator.Options(40, SamplingParams.GREEDY, 0, new int[0], 0, true);
            int before = gpu.liveGraphs();
            SpeculativeGenerator.Result replayed = new SpeculativeGenerator(model, draft, true).generate(GQA_PROMPTS, o);
            assertEquals(before, gpu.liveGraphs(), "the call released its draft and verification graphs");
            SpeculativeGenerator.Result direct = new SpeculativeGenerator(model, draft, false).generate(GQA_PROMPTS, o);
            assertTrue(replayed.stats().verifySteps() > 2, "graphs replayed: " + replayed.stats());
            for (int b = 0; b < GQA_PROMPTS.length; b++) {
                assertArrayEquals(direct.generation().tokens()[b], replayed.generation().tokens()[b], p + " sequence " + b);
                for (int s = 0; s < direct.generation().tokens()[b].length; s++) {
                    double d = Gpu.relDiff(direct.generation().stepLogits()[b][s], replayed.generation().stepLogits()[b][s], null);
                    assertTrue(d <= 1e-6, p + " sequence " + b + " step " + s + ": replayed logits differ by " + d);
                }
            }
            assertEquals(direct.stats().acceptedTokens(), replayed.stats().acceptedTokens());
        }
    }

    /** Plain and speculative greedy tokens, equal up to each sequence's first near tie (see the class comment). */
    static SpeculativeStats assertGreedyEqual(String what, LlamaModel model, S3dDraft draft, int[][] prompts, int maxNew, Precision p) {
        Generator.Options o = new Generator.Options(maxNew, SamplingParams.GREEDY, 0, new int[0], 0, true);
        try (Generator g = new Generator(model)) {
            GenerationResult plain = g.generate(prompts, o);
            SpeculativeGenerator.Result spec = new SpeculativeGenerator(model, draft).generate(prompts, o);
            int compared = 0, total = 0;
            for (int b = 0; b < prompts.length; b++) {
                int[] want = plain.tokens()[b], got = spec.generation().tokens()[b];
                total += want.length;
                // tokens before the first near tie were chosen by clear margins from equal histories
                int n = 0;
                while (n < want.length && !nearTie(plain.stepLogits()[b][n], tolerance(p))) n++;
                if (n == want.length) assertArrayEquals(want, got, what + " sequence " + b);
                else assertArrayEquals(Arrays.copyOf(want, n), Arrays.copyOf(got, Math.min(n, got.length)),
                        what + " sequence " + b + " before its first near tie, at step " + n);
                compared += n;
            }
            System.out.printf("S3D %s: %d of %d greedy tokens compared (the rest after a near tie), %s%n", what, compared, total, spec.stats());
            SpeculativeStats s = spec.stats();
            assertEquals(s.sequenceSteps() * draft.config().draftTokens(), s.draftedTokens());
            return s;
        }
    }

    /** Whether the two largest logits differ by less than tol of max(1, largest |logit|). */
    static boolean nearTie(float[] z, double tol) {
        float first = Float.NEGATIVE_INFINITY, second = Float.NEGATIVE_INFINITY;
        for (float v : z) {
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return first - second < tol * Math.max(1, Gpu.maxAbs(z));
    }
}
