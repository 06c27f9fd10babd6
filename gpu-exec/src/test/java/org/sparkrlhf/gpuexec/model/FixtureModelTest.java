package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;

import java.util.Arrays;
import java.util.EnumMap;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The engine, with the fast and the reference CPU kernels, against what HF transformers computed for the three fixture models. */
@Timeout(120)
class FixtureModelTest {
    static final Map<CpuKernels, CpuBackend> BACKENDS = new EnumMap<>(CpuKernels.class);

    @BeforeAll
    static void start() {
        for (CpuKernels k : CpuKernels.values()) BACKENDS.put(k, new CpuBackend(2, k));
    }

    @AfterAll
    static void stop() {
        BACKENDS.values().forEach(CpuBackend::close);
    }

    static Stream<Arguments> modelsAndKernels() {
        return Stream.of("tiny-llama", "tiny-qwen2").flatMap(n -> Arrays.stream(CpuKernels.values()).map(k -> Arguments.of(n, k)));
    }

    static Batch batch(SafeTensorsFile e) {
        int[] shape = e.entry("input_ids").shape();
        return new Batch(shape[0], shape[1], e.readInts("input_ids"), e.readInts("attention_mask"));
    }

    @ParameterizedTest
    @MethodSource("modelsAndKernels")
    void logitsLogprobsLossAndGradientsMatchTransformers(String name, CpuKernels kernels) {
        CpuBackend backend = BACKENDS.get(kernels);
        SafeTensorsFile e = Fixtures.expected(name);
        Batch batch = batch(e);
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir(name))) {
            TokenStats stats = model.forward(batch, false);
            int B = batch.batch(), T = batch.time(), V = model.config().vocabSize();

            boolean[] keepLogits = new boolean[B * T * V];
            for (int i = 0; i < keepLogits.length; i++) keepLogits[i] = batch.mask()[i / V] == 1;
            double dLogits = Fixtures.maxAbsDiff(e.readFloats("logits"), model.logits(), keepLogits);
            assertTrue(dLogits < 1e-4, name + " logits differ by " + dLogits);

            int[] tm = batch.targetMask();
            boolean[] keepLp = new boolean[tm.length];
            for (int i = 0; i < tm.length; i++) keepLp[i] = tm[i] == 1;
            double dLp = Fixtures.maxAbsDiff(e.readFloats("token_logprobs"), stats.logprobs(), keepLp);
            assertTrue(dLp < 1e-4, name + " token logprobs differ by " + dLp);

            SftLoss.Result loss = SftLoss.of(batch, stats);
            assertEquals(e.readFloats("loss")[0], loss.loss(), 1e-4, name + " loss");

            model.zeroGradients();
            model.backward(loss.dLogprobs(), null);
            checkGradients(name, e, model, backend);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuKernels.class)
    void rewardScoresAndGradientsMatchTransformers(CpuKernels kernels) {
        CpuBackend backend = BACKENDS.get(kernels);
        String name = "tiny-llama-reward";
        SafeTensorsFile e = Fixtures.expected(name);
        Batch batch = batch(e);
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir(name))) {
            float[] scores = model.scores(batch);
            double d = Fixtures.maxAbsDiff(e.readFloats("scores"), scores, null);
            assertTrue(d < 1e-4, "scores differ by " + d);
            model.zeroGradients();
            model.backwardScores(new float[]{1f, 1f});
            checkGradients(name, e, model, backend);
        }
    }

    /** A critic's per-position values: the value head read at the reward rows gives the reward and its gradients. */
    @ParameterizedTest
    @EnumSource(CpuKernels.class)
    void valueHeadAgreesWithTheRewardAtTheScoredPositions(CpuKernels kernels) {
        CpuBackend backend = BACKENDS.get(kernels);
        String name = "tiny-llama-reward";
        SafeTensorsFile e = Fixtures.expected(name);
        Batch batch = batch(e);
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir(name))) {
            float[] values = model.values(batch);
            int T = batch.time();
            int[] last = batch.lastNonPad(model.config().padTokenId());
            float[] expected = e.readFloats("scores");
            float[] dValues = new float[values.length];
            for (int b = 0; b < batch.batch(); b++) {
                assertEquals(expected[b], values[b * T + last[b]], 1e-4);
                dValues[b * T + last[b]] = 1f;
            }
            model.zeroGradients();
            model.backwardValues(dValues);
            checkGradients(name, e, model, backend);
        }
    }

    static void checkGradients(String name, SafeTensorsFile e, LlamaModel model, CpuBackend backend) {
        int checked = 0;
        for (LlamaWeights.Spec s : model.parameters().specs()) {
            float[] expected = e.readFloats("grad." + s.name());
            float[] actual = backend.download(model.gradients().get(s.name()));
            double scale = Math.max(Fixtures.maxAbs(expected), 1e-12);
            double diff = Fixtures.maxAbsDiff(expected, actual, null);
            assertTrue(diff <= 1e-3 * scale, name + " gradient of " + s.name() + " differs by " + diff + " (largest " + scale + ")");
            checked++;
        }
        long inFixture = e.entries().keySet().stream().filter(k -> k.startsWith("grad.")).count();
        assertEquals(inFixture, checked, "every parameter's gradient is compared");
    }
}
