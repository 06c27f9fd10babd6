package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;

/**
 * Sampled generation in bf16 on the GPU against the CPU backend's fp32 model with the same weights,
 * and the decode graphs it records.
 *
 * <p>In bf16 the sampled tokens cannot equal the CPU's (a logit off by 1e-2 changes a draw near a
 * boundary), so each step is checked on its own: (1) the token is what the CPU sampler draws, with
 * the same seed, sequence and step, from the logits the GPU computed at that step; (2) those logits
 * are the CPU model's for the same sequence so far (teacher-forced: one fp32 forward over prompt and
 * generated tokens); (3) so is the sampled token's logprob. Tolerances are per tensor: each step's
 * logits of one sequence and its token's logprob are held to 2e-2 of max(1, largest |logit| of that
 * step of that sequence), the bound CudaModelTest argues for bf16 (about 20 roundings of u = 2^-9),
 * not to a fraction of the largest logit anywhere in the batch.
 */
@Timeout(900)
class CudaGenerationTest {
    static CpuBackend cpu;
    static CudaBackend bf16;

    @BeforeAll
    static void start() {
        Gpu.assumeGpu();
        cpu = new CpuBackend();
        bf16 = new CudaBackend(0, Precision.BF16);
    }

    @AfterAll
    static void stop() {
        if (bf16 != null) bf16.close();
        if (cpu != null) cpu.close();
    }

    static ModelConfig config(String kind) {
        return switch (kind) {
            // the benchmark's vocabulary and head size, two layers so that the CPU reference stays quick
            case "vocab32000" -> ModelConfig.llama(32000, 256, 688, 2, 4, 4, 512);
            default -> CudaModelTest.config(kind);
        };
    }

    /** Random prompts of promptLength tokens, less up to 4 for every other sequence (left padding). */
    static int[][] prompts(int batch, int promptLength, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[][] p = new int[batch][];
        for (int b = 0; b < batch; b++) {
            p[b] = Gpu.ints(r, promptLength - (b % 2) * (b % 5), vocab);
            for (int t = 0; t < p[b].length; t++) p[b][t] = Math.max(p[b][t], 3); // no EOS (2) in a prompt
        }
        return p;
    }

    /**
     * 3 x 24 tokens of a GQA model; and the benchmark's shape: vocabulary 32000, 64 prompts of 128
     * tokens, 128 new tokens each (64 x 256 tokens).
     */
    @ParameterizedTest
    @CsvSource({"llama-gqa, 3, 12, 12", "vocab32000, 64, 128, 128"})
    void bf16SampledGenerationFollowsTheCpuModel(String kind, int batch, int promptLength, int newTokens) {
        ModelConfig c = config(kind);
        int V = c.vocabSize();
        int[][] prompts = prompts(batch, promptLength, V, 17);
        SamplingParams sampling = new SamplingParams(0.9f, 50, 0.95f);
        Generator.Options o = new Generator.Options(newTokens, sampling, 4321, new int[] {2}, 0, true);
        try (LlamaModel ref = LlamaModel.random(cpu, c, DType.F32, 5, 0.08f);
             LlamaModel m = LlamaModel.random(bf16, c, DType.F32, 5, 0.08f);
             Generator g = new Generator(m)) {
            GenerationResult r = g.generate(prompts, o);
            int steps = 0;
            for (int[] t : r.tokens()) steps = Math.max(steps, t.length);
            int mismatched = 0;
            for (int s = 0; s < steps; s++) mismatched += drawsDiffer(r, s, V, o);
            assertEquals(0, mismatched, kind + ": tokens the CPU sampler does not draw from the GPU's logits");
            double worstLogits = 0, worstLogprob = 0;
            int chunk = 8;
            for (int b0 = 0; b0 < batch; b0 += chunk) {
                int n = Math.min(chunk, batch - b0);
                int[][] seqs = new int[n][];
                for (int i = 0; i < n; i++) {
                    int[] p = prompts[b0 + i], t = r.tokens()[b0 + i];
                    seqs[i] = Arrays.copyOf(p, p.length + t.length);
                    System.arraycopy(t, 0, seqs[i], p.length, t.length);
                }
                Batch teacher = Batch.rightPadded(seqs, 0);
                ref.forward(teacher, false);
                float[] logits = ref.logits();
                for (int i = 0; i < n; i++) {
                    int b = b0 + i;
                    for (int s = 0; s < r.tokens()[b].length; s++) {
                        int at = i * teacher.time() + prompts[b].length - 1 + s;
                        float[] want = Arrays.copyOfRange(logits, at * V, (at + 1) * V);
                        float[] got = r.stepLogits()[b][s];
                        double scale = Math.max(1, Gpu.maxAbs(want));
                        double dLogits = Gpu.relDiff(want, got, null);
                        int token = r.tokens()[b][s];
                        double dLogprob = Math.abs(logprob(want, token) - logprob(got, token)) / scale;
                        worstLogits = Math.max(worstLogits, dLogits);
                        worstLogprob = Math.max(worstLogprob, dLogprob);
                        assertTrue(dLogits <= 2e-2, kind + " sequence " + b + " step " + s + ": logits differ by "
                                + dLogits + " of max(1, its largest logit " + scale + ")");
                        assertTrue(dLogprob <= 2e-2, kind + " sequence " + b + " step " + s + ": the logprob of token "
                                + token + " differs by " + dLogprob + " of " + scale);
                    }
                }
            }
            System.out.printf("%s: %d x (%d + %d) tokens in bf16, worst step logits %.3g, worst sampled logprob %.3g "
                    + "(each of max(1, that step's largest logit))%n", kind, batch, promptLength, newTokens, worstLogits, worstLogprob);
        }
    }

    /** How many sequences' token at step s the CPU sampler does not draw from the GPU's logits of that step. */
    private static int drawsDiffer(GenerationResult r, int s, int V, Generator.Options o) {
        int B = r.tokens().length;
        float[] z = new float[B * V];
        int[] steps = new int[B], seqIds = new int[B];
        for (int b = 0; b < B; b++) {
            steps[b] = s;
            seqIds[b] = b;
            if (s < r.tokens()[b].length) System.arraycopy(r.stepLogits()[b][s], 0, z, b * V, V);
        }
        Tensor tokens = cpu.allocate(DType.I32, B), logits = cpu.allocate(DType.F32, B, V), finished = cpu.allocate(DType.I32, B),
                ids = cpu.allocate(DType.I32, B), st = cpu.allocate(DType.I32, B);
        try {
            cpu.upload(logits, z);
            cpu.upload(ids, seqIds);
            cpu.upload(st, steps);
            cpu.sample(tokens, logits, finished, ids, st, o.seed(), o.sampling(), o.eosIds(), o.padId());
            int[] drawn = cpu.downloadInts(tokens);
            int differ = 0;
            for (int b = 0; b < B; b++) {
                if (s < r.tokens()[b].length && drawn[b] != r.tokens()[b][s]) {
                    differ++;
                    System.out.printf("sequence %d step %d: the GPU drew %d, the CPU sampler %d%n", b, s, r.tokens()[b][s], drawn[b]);
                }
            }
            return differ;
        } finally {
            for (Tensor t : new Tensor[] {tokens, logits, finished, ids, st}) cpu.free(t);
        }
    }

    private static double logprob(float[] z, int token) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (float v : z) max = Math.max(max, v);
        for (float v : z) sum += Math.exp(v - max);
        return z[token] - max - Math.log(sum);
    }

    /**
     * Each generation call records one decode graph and its generator releases it: the backend holds
     * none after a call, however many calls (each a new generator, as every generate call of a run).
     */
    @Test
    void everyGenerationCallReleasesItsGraph() {
        ModelConfig c = CudaModelTest.config("llama-gqa");
        try (CudaBackend gpu = new CudaBackend(0, Precision.BF16);
             LlamaModel m = LlamaModel.random(gpu, c, DType.F32, 5, 0.08f)) {
            for (int call = 0; call < 6; call++) {
                try (Generator g = new Generator(m)) {
                    Generator.Options o = new Generator.Options(6, new SamplingParams(1, 0, 1), call, new int[0], 0, false);
                    g.generate(prompts(2 + call % 2, 7, c.vocabSize(), call), o);
                    assertEquals(1, gpu.liveGraphs(), "call " + call + ": one decode graph while its generator lives");
                    // a batch of another size: a new decode state, the old one's graph released
                    g.generate(prompts(4, 7, c.vocabSize(), call), o);
                    assertEquals(1, gpu.liveGraphs(), "call " + call + " after a new batch size");
                }
                assertEquals(0, gpu.liveGraphs(), "call " + call + ": the generator's close released its graph");
            }
        }
    }

    /** Steps never released: the backend keeps the newest few graphs; a step whose graph was dropped records again. */
    @Test
    void unreleasedStepsKeepABoundedNumberOfGraphs() {
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32)) {
            Tensor counter = gpu.allocate(DType.I32, 1);
            int n = CudaBackend.MAX_LIVE_GRAPHS + 2;
            Runnable[] steps = new Runnable[n];
            for (int i = 0; i < n; i++) {
                steps[i] = gpu.capturable(() -> gpu.addInt(counter, 1));
                steps[i].run();
                steps[i].run();
            }
            assertEquals(CudaBackend.MAX_LIVE_GRAPHS, gpu.liveGraphs());
            steps[0].run(); // dropped: records again
            assertEquals(CudaBackend.MAX_LIVE_GRAPHS, gpu.liveGraphs());
            assertEquals(2 * n + 1, gpu.downloadInts(counter)[0], "every run, replayed or recorded again, added one");
            for (Runnable s : steps) gpu.releaseCaptured(s);
            assertEquals(0, gpu.liveGraphs());
        }
    }
}
