package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.RopeScaling;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;

/**
 * The model on the GPU: the HF fixtures in fp32 and in bf16, agreement with the CPU backend on
 * random models of several shapes, training and generation.
 *
 * <p>bf16 tolerances. In {@link Precision#BF16} mode the weights and every GEMM and attention operand
 * are rounded to bf16, whose unit roundoff is u = 2^-9 ~ 0.002 (8 significant bits). A logit of the
 * 2-layer fixtures passes through about 20 such roundings (relative errors that add up like a random
 * walk, ~ u * sqrt(20) ~ 0.01 of the values they touch), so logits and logprobs are held to 2e-2 of
 * max(1, largest |logit|) and the loss to 1% of itself. Gradients go through twice as many roundings
 * and are compared as a whole tensor: ||g_gpu - g_ref|| / ||g_ref|| <= 5e-2.
 */
@Timeout(300)
class CudaModelTest {
    static CpuBackend cpu;
    static CudaBackend fp32, bf16;

    @BeforeAll
    static void start() {
        Gpu.assumeGpu();
        cpu = new CpuBackend();
        fp32 = new CudaBackend(0, Precision.FP32);
        bf16 = new CudaBackend(0, Precision.BF16);
    }

    @AfterAll
    static void stop() {
        if (fp32 != null) fp32.close();
        if (bf16 != null) bf16.close();
        if (cpu != null) cpu.close();
    }

    static Batch fixtureBatch(SafeTensorsFile e) {
        int[] shape = e.entry("input_ids").shape();
        return new Batch(shape[0], shape[1], e.readInts("input_ids"), e.readInts("attention_mask"));
    }

    static boolean[] keepLogits(Batch batch, int V) {
        boolean[] keep = new boolean[batch.batch() * batch.time() * V];
        for (int i = 0; i < keep.length; i++) keep[i] = batch.mask()[i / V] == 1;
        return keep;
    }

    static boolean[] keepTargets(Batch batch) {
        int[] tm = batch.targetMask();
        boolean[] keep = new boolean[tm.length];
        for (int i = 0; i < tm.length; i++) keep[i] = tm[i] == 1;
        return keep;
    }

    @ParameterizedTest
    @CsvSource({"tiny-llama, FP32", "tiny-qwen2, FP32", "tiny-llama, BF16", "tiny-qwen2, BF16"})
    void fixturesMatchTransformers(String name, Precision precision) {
        CudaBackend gpu = precision == Precision.FP32 ? fp32 : bf16;
        DType weights = precision == Precision.FP32 ? DType.F32 : DType.BF16;
        boolean exact = precision == Precision.FP32;
        SafeTensorsFile e = Fixtures.expected(name);
        Batch batch = fixtureBatch(e);
        try (LlamaModel model = LlamaModel.load(gpu, Fixtures.dir(name), weights)) {
            TokenStats stats = model.forward(batch, false);
            int V = model.config().vocabSize();
            float[] refLogits = e.readFloats("logits");
            double scale = Math.max(1.0, Fixtures.maxAbs(refLogits));
            double dLogits = Fixtures.maxAbsDiff(refLogits, model.logits(), keepLogits(batch, V)) / scale;
            double dLp = Fixtures.maxAbsDiff(e.readFloats("token_logprobs"), stats.logprobs(), keepTargets(batch)) / scale;
            SftLoss.Result loss = SftLoss.of(batch, stats);
            float refLoss = e.readFloats("loss")[0];
            System.out.printf("%s %s: logits %.3g, logprobs %.3g (of max(1, largest logit %.3g)), loss %.6f vs %.6f%n",
                    name, precision, dLogits, dLp, scale, loss.loss(), refLoss);
            assertTrue(dLogits < (exact ? 1e-4 : 2e-2), name + " logits differ by " + dLogits);
            assertTrue(dLp < (exact ? 1e-4 : 2e-2), name + " token logprobs differ by " + dLp);
            assertEquals(refLoss, loss.loss(), exact ? 1e-4 : 1e-2 * refLoss, name + " loss");
            model.zeroGradients();
            model.backward(loss.dLogprobs(), null);
            checkGradients(name + " " + precision, e, model, gpu, exact);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"FP32", "BF16"})
    void rewardModelMatchesTransformers(Precision precision) {
        CudaBackend gpu = precision == Precision.FP32 ? fp32 : bf16;
        boolean exact = precision == Precision.FP32;
        SafeTensorsFile e = Fixtures.expected("tiny-llama-reward");
        Batch batch = fixtureBatch(e);
        try (LlamaModel model = LlamaModel.load(gpu, Fixtures.dir("tiny-llama-reward"), exact ? DType.F32 : DType.BF16)) {
            float[] scores = model.scores(batch);
            float[] ref = e.readFloats("scores");
            double d = Fixtures.maxAbsDiff(ref, scores, null) / Math.max(1.0, Fixtures.maxAbs(ref));
            System.out.printf("tiny-llama-reward %s: scores %s vs %s%n", precision, Arrays.toString(scores), Arrays.toString(ref));
            assertTrue(d < (exact ? 1e-4 : 2e-2), "scores differ by " + d);
            model.zeroGradients();
            model.backwardScores(new float[] {1f, 1f});
            checkGradients("tiny-llama-reward " + precision, e, model, gpu, exact);
        }
    }

    static void checkGradients(String name, SafeTensorsFile e, LlamaModel model, Backend gpu, boolean exact) {
        double worst = 0;
        for (LlamaWeights.Spec s : model.parameters().specs()) {
            float[] expected = e.readFloats("grad." + s.name());
            float[] actual = gpu.download(model.gradients().get(s.name()));
            if (exact) {
                double scale = Math.max(Fixtures.maxAbs(expected), 1e-12);
                double diff = Fixtures.maxAbsDiff(expected, actual, null) / scale;
                worst = Math.max(worst, diff);
                assertTrue(diff <= 1e-3, name + " gradient of " + s.name() + " differs by " + diff + " of its largest value");
            } else {
                double rel = Gpu.relL2(expected, actual);
                worst = Math.max(worst, rel);
                assertTrue(rel <= 5e-2, name + " gradient of " + s.name() + " has relative L2 error " + rel);
            }
        }
        System.out.printf("%s: worst gradient error %.3g%n", name, worst);
    }

    // ---------------------------------------------------------------- GPU against CPU on random models

    static ModelConfig config(String kind) {
        return switch (kind) {
            case "llama-gqa" -> ModelConfig.llama(101, 64, 96, 2, 4, 2, 512);
            case "qwen2-bias-tied" -> new ModelConfig("Qwen2ForCausalLM", "qwen2", ModelConfig.Head.CAUSAL_LM, 97, 64, 80, 2,
                    4, 1, 16, 1e-6f, 1e6, RopeScaling.DEFAULT, 512, true, false, false, true, new int[2], 0, 1, new int[] {2}, null);
            case "head64" -> ModelConfig.llama(120, 128, 160, 2, 2, 2, 512);
            case "mistral-window" -> new ModelConfig("MistralForCausalLM", "mistral", ModelConfig.Head.CAUSAL_LM, 90, 96, 128, 2,
                    6, 2, 16, 1e-5f, 1e4, RopeScaling.DEFAULT, 512, false, false, false, false, new int[] {9, 9}, 0, 1, new int[] {2}, null);
            default -> throw new IllegalArgumentException(kind);
        };
    }

    /** Rows: full length, right-padded, left-padded. */
    static Batch randomBatch(int V, int T, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[][] seqs = {Gpu.ints(r, T, V), Gpu.ints(r, T - 9, V), Gpu.ints(r, T - 4, V)};
        Batch right = Batch.rightPadded(new int[][] {seqs[0], seqs[1]}, 0);
        int[] ids = new int[3 * T], mask = new int[3 * T];
        System.arraycopy(right.ids(), 0, ids, 0, 2 * T);
        System.arraycopy(right.mask(), 0, mask, 0, 2 * T);
        for (int t = 0; t < T; t++) {
            boolean real = t >= 4;
            ids[2 * T + t] = real ? seqs[2][t - 4] : 0;
            mask[2 * T + t] = real ? 1 : 0;
        }
        return new Batch(3, T, ids, mask);
    }

    @ParameterizedTest
    @CsvSource({"llama-gqa, 37, FP32", "qwen2-bias-tied, 37, FP32", "head64, 70, FP32", "mistral-window, 29, FP32",
            "llama-gqa, 37, BF16", "qwen2-bias-tied, 37, BF16", "head64, 70, BF16", "mistral-window, 29, BF16"})
    void gpuAndCpuAgreeForwardAndBackward(String kind, int T, Precision precision) {
        CudaBackend gpu = precision == Precision.FP32 ? fp32 : bf16;
        boolean exact = precision == Precision.FP32;
        ModelConfig c = config(kind);
        Batch batch = randomBatch(c.vocabSize(), T, 11);
        try (LlamaModel ref = LlamaModel.random(cpu, c, DType.F32, 5, 0.08f);
             LlamaModel m = LlamaModel.random(gpu, c, DType.F32, 5, 0.08f)) {
            TokenStats rs = ref.forward(batch, true), gs = m.forward(batch, true);
            boolean[] keep = keepTargets(batch);
            double dLp = Fixtures.maxAbsDiff(rs.logprobs(), gs.logprobs(), keep) / Math.max(1, Gpu.maxAbs(rs.logprobs()));
            double dEnt = Fixtures.maxAbsDiff(rs.entropies(), gs.entropies(), keep) / Math.max(1, Gpu.maxAbs(rs.entropies()));
            SftLoss.Result rl = SftLoss.of(batch, rs), gl = SftLoss.of(batch, gs);
            float[] dEntropy = new float[rs.entropies().length];
            Arrays.fill(dEntropy, 0.01f);
            ref.zeroGradients();
            m.zeroGradients();
            ref.backward(rl.dLogprobs(), dEntropy);
            m.backward(rl.dLogprobs(), dEntropy);
            double worst = 0;
            for (LlamaWeights.Spec s : ref.parameters().specs()) {
                float[] a = cpu.download(ref.gradients().get(s.name())), b = gpu.download(m.gradients().get(s.name()));
                double d = exact ? Fixtures.maxAbsDiff(a, b, null) / Math.max(Fixtures.maxAbs(a), 1e-12) : Gpu.relL2(a, b);
                worst = Math.max(worst, d);
                assertTrue(d <= (exact ? 1e-3 : 5e-2), kind + " " + precision + ": gradient of " + s.name() + " differs by " + d);
            }
            System.out.printf("%s T=%d %s: logprobs %.3g, entropies %.3g, loss %.6f vs %.6f, worst gradient %.3g%n",
                    kind, T, precision, dLp, dEnt, gl.loss(), rl.loss(), worst);
            assertTrue(dLp <= (exact ? 1e-4 : 2e-2), kind + " logprobs differ by " + dLp);
            assertTrue(dEnt <= (exact ? 1e-4 : 2e-2), kind + " entropies differ by " + dEnt);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"FP32", "BF16"})
    void aShortTrainingLoopLowersTheLossAsOnTheCpu(Precision precision) {
        CudaBackend gpu = precision == Precision.FP32 ? fp32 : bf16;
        Batch batch = fixtureBatch(Fixtures.expected("tiny-llama"));
        float[] cpuLoss = train(cpu, batch), gpuLoss = train(gpu, batch);
        System.out.printf("training %s: cpu %s%n          gpu %s%n", precision, Arrays.toString(cpuLoss), Arrays.toString(gpuLoss));
        assertTrue(gpuLoss[gpuLoss.length - 1] < 0.7 * gpuLoss[0], "GPU loss went from " + gpuLoss[0] + " to " + gpuLoss[gpuLoss.length - 1]);
        double tol = precision == Precision.FP32 ? 1e-3 : 5e-2;
        for (int i = 0; i < cpuLoss.length; i++) {
            assertEquals(cpuLoss[i], gpuLoss[i], tol * cpuLoss[i], "loss at step " + i);
        }
    }

    static float[] train(Backend backend, Batch batch) {
        float[] losses = new float[12];
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             AdamW opt = AdamW.forModel(model, AdamW.Hyper.defaults(1e-2f))) {
            for (int step = 0; step < losses.length; step++) {
                model.zeroGradients();
                TokenStats s = model.forward(batch, false);
                SftLoss.Result loss = SftLoss.of(batch, s);
                losses[step] = loss.loss();
                model.backward(loss.dLogprobs(), null);
                opt.step();
            }
        }
        return losses;
    }

    // ---------------------------------------------------------------- generation

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "tiny-qwen2"})
    void greedyGenerationOnTheGpuEqualsTransformers(String name) {
        SafeTensorsFile e = Fixtures.expected(name);
        int[] promptShape = e.entry("greedy_prompt").shape(), outShape = e.entry("greedy_output").shape();
        int[] prompt = e.readInts("greedy_prompt"), expected = e.readInts("greedy_output");
        int B = promptShape[0], Tp = promptShape[1], To = outShape[1];
        int[][] prompts = new int[B][];
        for (int b = 0; b < B; b++) prompts[b] = Arrays.copyOfRange(prompt, b * Tp, (b + 1) * Tp);
        try (LlamaModel model = LlamaModel.load(fp32, Fixtures.dir(name)); Generator g = new Generator(model)) {
            GenerationResult r = g.generate(prompts, Generator.Options.greedy(To - Tp, model.config().eosTokenIds(), 0));
            for (int b = 0; b < B; b++) {
                assertArrayEquals(Arrays.copyOfRange(expected, b * To + Tp, (b + 1) * To), r.tokens()[b], name + " row " + b);
            }
        }
    }

    /** The same seed gives the same tokens on both backends, prompts of different lengths, sequences ending apart. */
    @ParameterizedTest
    @CsvSource({"1, 0, 1", "0.8, 40, 0.9", "1.2, 0, 0.7"})
    void sampledGenerationEqualsTheCpuBackends(float temperature, int topK, float topP) {
        int[][] prompts = {{1, 17, 99, 23, 5}, {1, 300}, {1, 45, 46, 47, 48, 49, 50, 51}};
        Generator.Options o = new Generator.Options(14, new SamplingParams(temperature, topK, topP), 1234, new int[] {2, 77}, 0, false);
        try (LlamaModel a = LlamaModel.load(cpu, Fixtures.dir("tiny-llama")); Generator ga = new Generator(a);
             LlamaModel b = LlamaModel.load(fp32, Fixtures.dir("tiny-llama")); Generator gb = new Generator(b)) {
            GenerationResult want = ga.generate(prompts, o);
            GenerationResult got = gb.generate(prompts, o);
            for (int i = 0; i < prompts.length; i++) {
                assertArrayEquals(want.tokens()[i], got.tokens()[i], "row " + i);
                assertEquals(want.stoppedAtEos()[i], got.stoppedAtEos()[i], "row " + i + " stopped at eos");
            }
            // a second call reuses the recorded decode step
            GenerationResult again = gb.generate(prompts, o);
            for (int i = 0; i < prompts.length; i++) assertArrayEquals(want.tokens()[i], again.tokens()[i], "replayed row " + i);
        }
    }

    @Test
    void memoryIsReportedPerModelAndKind() {
        try (CudaBackend gpu = new CudaBackend(0, Precision.BF16)) {
            long before = gpu.memoryReport().weights();
            gpu.allocationKind(MemoryKind.WEIGHTS);
            LlamaModel model = LlamaModel.load(gpu, Fixtures.dir("tiny-llama"));
            gpu.allocationKind(MemoryKind.ACTIVATIONS);
            long params = model.parameters().count();
            int headDim = model.config().headDim();
            assertEquals(0, before);
            assertEquals(params * 4 + headDim / 2 * 4, gpu.memoryReport().weights(), "fp32 parameters and the rotary frequencies");
            model.forward(fixtureBatch(Fixtures.expected("tiny-llama")), false);
            GpuMemoryReport r = gpu.memoryReport();
            assertTrue(r.activations() > 0);
            // the bf16 copies of the weights the GEMMs used count as weights
            assertTrue(r.weights() > params * 4, r.toString());
            System.out.println("tiny-llama on " + gpu.name() + ": " + r);
            model.close();
            assertEquals(0, gpu.memoryReport().weights(), "everything freed");
        }
    }

    @Test
    void ncclRunsOnOneRank() {
        int version = NcclCommunicator.version();
        assertTrue(version > 20000, "NCCL version " + version);
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32);
             NcclCommunicator comm = new NcclCommunicator(gpu.stream(), 1, NcclCommunicator.newUniqueId(), 0)) {
            CudaTensor t = gpu.allocate(MemoryKind.ACTIVATIONS, DType.F32, 5);
            gpu.upload(t, new float[] {1, 2, 3, 4, 5});
            comm.allReduceSum(t.buffer, 5, ElementType.F32);
            assertArrayEquals(new float[] {1, 2, 3, 4, 5}, gpu.download(t));
            System.out.println("NCCL " + version + ", cuBLAS " + Cublas.libraryName() + ", NVRTC " + Nvrtc.version());
        }
    }

    /**
     * The non-blocking set-up's deadline on the real library: rank 0 of a two-rank communicator
     * whose rank 1 never joins (one GPU) fails within the deadline, aborted, instead of waiting forever.
     */
    @Test
    void ncclInitWithoutItsPeerFailsAtTheDeadline() {
        try (CudaBackend gpu = new CudaBackend(0, Precision.FP32)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> new NcclCommunicator(gpu.stream(), 2, NcclCommunicator.newUniqueId(), 0, 3_000));
            assertTrue(e.getMessage().startsWith("NCCL rank 0 of 2: ncclCommInitRankConfig"), e.getMessage());
            assertTrue(e.getMessage().contains("did not complete within 3000 ms"), e.getMessage());
        }
    }
}
