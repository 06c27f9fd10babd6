package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Activations and KV caches stored as BF16 (the CPU backend's emulation of a bf16 mode: every op
 * rounds what it writes to a BF16 tensor): the ledger holds exactly 2 bytes less for each element
 * of the layers' buffers, the final norm's output, the caches and the decode step's buffers, and
 * results stay within the bf16 tolerances of CudaModelTest: logprobs and logits within 2e-2 of
 * max(1, largest |logit|), gradients within 5e-2 relative L2.
 */
class Bf16ActivationsTest {
    static final Batch BATCH = Batch.rightPadded(new int[][]{{1, 17, 300, 42, 5, 9, 77}, {1, 3, 250, 8}}, 0);

    record Run(long forwardBytes, TokenStats stats, float[] logits, Map<String, float[]> grads, long decoderBytes, float[] firstLogits) {
    }

    static Run run(DType activations) {
        int[][] prompts = {{1, 17, 300, 42}, {1, 3}};
        try (CpuBackend backend = new CpuBackend(1).storeActivationsAs(activations);
             LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            long base = backend.liveBytes();
            TokenStats stats = model.forward(List.of(BATCH), true, true).get(0);
            long forwardBytes = backend.liveBytes() - base;
            float[] logits = model.logits();
            float[] d = new float[stats.logprobs().length];
            for (int i = 0; i < d.length; i++) d[i] = (i % 3 - 1) * 0.25f;
            model.backward(d, null);
            Map<String, float[]> grads = model.downloadGradients();
            model.releaseActivations();
            long beforeGenerator = backend.liveBytes();
            try (Generator g = new Generator(model)) {
                GenerationResult r = g.generate(prompts, new Generator.Options(3, org.sparkrlhf.gpuexec.backend.SamplingParams.GREEDY, 0, new int[0], 0, true));
                return new Run(forwardBytes, stats, logits, grads, backend.liveBytes() - beforeGenerator, r.stepLogits()[0][0]);
            }
        }
    }

    @Test
    void bf16ActivationsHalveTheirBytesAndStayWithinBf16Tolerances() {
        Run f32 = run(DType.F32), bf16 = run(DType.BF16);
        ModelConfig c;
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            c = model.config();
        }
        long L = c.numLayers(), C = c.hiddenSize(), Q = c.qDim(), KV = c.kvDim(), I = c.intermediateSize(), N = BATCH.tokens();
        // per token: residual streams (L + 1), after attention, ln1, ln2 (L each) of C; q and att; k and v; gate, up, swi; lnf
        long forwardElements = N * (L * (4 * C + 2 * Q + 2 * KV + 3 * I) + 2 * C);
        assertEquals(2 * forwardElements, f32.forwardBytes() - bf16.forwardBytes());
        // the generator: caches [B, S, KV] per layer for k and v; the step's x, ln, h, lnf; q, att; k, v; gate, up, swi
        long B = 2, S = 4 + 3;
        long decoderElements = 2 * L * B * S * KV + B * (4 * C + 2 * Q + 2 * KV + 3 * I);
        assertEquals(2 * decoderElements, f32.decoderBytes() - bf16.decoderBytes());

        float scale = 1f;
        for (float x : f32.logits()) scale = Math.max(scale, Math.abs(x));
        float tol = 2e-2f * scale;
        assertArrayEquals(f32.stats().logprobs(), bf16.stats().logprobs(), tol);
        assertArrayEquals(f32.stats().entropies(), bf16.stats().entropies(), tol);
        assertArrayEquals(f32.logits(), bf16.logits(), tol);
        assertArrayEquals(f32.firstLogits(), bf16.firstLogits(), tol);
        assertTrue(notAllEqual(f32.logits(), bf16.logits()), "bf16 storage rounds the activations");
        for (var e : f32.grads().entrySet()) {
            float[] a = e.getValue(), b = bf16.grads().get(e.getKey());
            double diff = 0, norm = 0;
            for (int i = 0; i < a.length; i++) {
                diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
                norm += a[i] * (double) a[i];
            }
            assertTrue(Math.sqrt(diff) <= 5e-2 * Math.sqrt(norm) + 1e-12, e.getKey() + ": relative L2 error " + Math.sqrt(diff / norm));
        }
    }

    private static boolean notAllEqual(float[] a, float[] b) {
        for (int i = 0; i < a.length; i++) if (a[i] != b[i]) return true;
        return false;
    }
}
