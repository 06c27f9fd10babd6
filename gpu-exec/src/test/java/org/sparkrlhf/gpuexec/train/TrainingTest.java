package org.sparkrlhf.gpuexec.train;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class TrainingTest {
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static Batch fixtureBatch() {
        SafeTensorsFile e = Fixtures.expected("tiny-llama");
        return new Batch(2, 24, e.readInts("input_ids"), e.readInts("attention_mask"));
    }

    static AdamW.Param param(String name, float[] value, float[] grad, boolean decays) {
        Tensor p = backend.allocate(DType.F32, value.length), g = backend.allocate(DType.F32, grad.length);
        backend.upload(p, value);
        backend.upload(g, grad);
        return new AdamW.Param(name, p, g, backend.allocate(DType.F32, value.length), backend.allocate(DType.F32, value.length), decays);
    }

    /** Two AdamW steps computed by hand (in double) with torch.optim.AdamW's formulas. */
    @Test
    void adamwMatchesHandComputedSteps() {
        float[] w = {0.5f, -1.0f, 2.0f}, g1 = {0.1f, -0.2f, 0.3f}, g2 = {-0.05f, 0.4f, 0.0f};
        double lr = 0.1, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
        AdamW.Param decayed = param("w", w, g1, true), plain = param("b", w, g1, false);
        try (AdamW opt = new AdamW(backend, List.of(decayed, plain), new AdamW.Hyper((float) lr, (float) b1, (float) b2, (float) eps, (float) wd, 0f))) {
            opt.step();
            backend.upload(decayed.grad(), g2);
            backend.upload(plain.grad(), g2);
            opt.step();
            for (boolean decay : new boolean[]{true, false}) {
                float[] got = backend.download((decay ? decayed : plain).value());
                for (int i = 0; i < w.length; i++) {
                    double p = w[i], m = 0, v = 0;
                    float[][] gs = {g1, g2};
                    for (int t = 1; t <= 2; t++) {
                        double g = gs[t - 1][i];
                        m = b1 * m + (1 - b1) * g;
                        v = b2 * v + (1 - b2) * g * g;
                        p = p * (1 - lr * (decay ? wd : 0));
                        p -= lr / (1 - Math.pow(b1, t)) * m / (Math.sqrt(v) / Math.sqrt(1 - Math.pow(b2, t)) + eps);
                    }
                    assertEquals(p, got[i], 1e-5, "element " + i + (decay ? " with" : " without") + " decay");
                }
            }
        }
    }

    @Test
    void clippingScalesGradientsToTheMaxNorm() {
        float[] g = {3f, 4f}; // norm 5
        AdamW.Param p = param("w", new float[]{1f, 1f}, g, false);
        try (AdamW opt = new AdamW(backend, List.of(p), new AdamW.Hyper(0.1f, 0.9f, 0.999f, 1e-8f, 0f, 1f))) {
            AdamW.StepInfo info = opt.step();
            assertEquals(5f, info.gradNorm(), 1e-6);
            assertEquals(1f / (5f + 1e-6f), info.clipScale(), 1e-7);
            float[] m = backend.download(p.m());
            // m = (1 - beta1) * clipped gradient, clipped = g / 5
            assertEquals(0.1f * 0.6f, m[0], 1e-6);
            assertEquals(0.1f * 0.8f, m[1], 1e-6);
        }
        AdamW.Param q = param("w", new float[]{1f, 1f}, new float[]{0.3f, 0.4f}, false);
        try (AdamW opt = new AdamW(backend, List.of(q), new AdamW.Hyper(0.1f, 0.9f, 0.999f, 1e-8f, 0f, 1f))) {
            assertEquals(1f, opt.step().clipScale(), "a norm below the max is not clipped");
        }
    }

    @Test
    void twoMicroBatchesAccumulateToTheFullBatchGradient() {
        Batch full = fixtureBatch();
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            model.zeroGradients();
            TokenStats s = model.forward(full, false);
            model.backward(SftLoss.of(full, s).dLogprobs(), null);
            LlamaWeights g = model.gradients();
            float[][] whole = new float[g.specs().size()][];
            for (int i = 0; i < whole.length; i++) whole[i] = backend.download(g.get(g.specs().get(i).name()));

            int total = Arrays.stream(full.targetMask()).sum();
            model.zeroGradients();
            for (int b = 0; b < 2; b++) {
                Batch micro = new Batch(1, 24, Arrays.copyOfRange(full.ids(), b * 24, b * 24 + 24),
                        Arrays.copyOfRange(full.mask(), b * 24, b * 24 + 24));
                TokenStats ms = model.forward(micro, false);
                model.backward(SftLoss.of(micro, ms, total).dLogprobs(), null);
            }
            for (int i = 0; i < whole.length; i++) {
                float[] acc = backend.download(g.get(g.specs().get(i).name()));
                double scale = Math.max(Fixtures.maxAbs(whole[i]), 1e-12);
                double d = Fixtures.maxAbsDiff(whole[i], acc, null);
                assertTrue(d <= 1e-5 * scale + 1e-9, g.specs().get(i).name() + " differs by " + d);
            }
        }
    }

    @Test
    void aShortTrainingLoopLowersTheLoss() {
        Batch batch = fixtureBatch();
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             AdamW opt = AdamW.forModel(model, AdamW.Hyper.defaults(1e-2f))) {
            float first = 0, last = 0;
            for (int step = 0; step < 12; step++) {
                model.zeroGradients();
                TokenStats s = model.forward(batch, false);
                SftLoss.Result loss = SftLoss.of(batch, s);
                if (step == 0) first = loss.loss();
                last = loss.loss();
                model.backward(loss.dLogprobs(), null);
                opt.step();
            }
            assertTrue(last < first * 0.7, "loss went from " + first + " to " + last);
        }
    }
}
