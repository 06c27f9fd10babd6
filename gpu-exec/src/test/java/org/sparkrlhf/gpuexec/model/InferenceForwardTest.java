package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A forward that no backward follows keeps one layer's buffers, not every layer's: the backend's
 * ledger of live bytes after it is smaller by exactly the per-layer activations of the other
 * layers (and one residual stream each), its results are the same bits, and a backward after it
 * is refused.
 */
class InferenceForwardTest {
    static final Batch BATCH = Batch.rightPadded(new int[][]{{1, 17, 300, 42, 5, 9, 77}, {1, 3, 250, 8}}, 0);

    /** Bytes one layer keeps for a backward over batch b (F32 and I32 alike: 4 bytes an element), its residual input included. */
    static long layerBytes(ModelConfig c, Batch b) {
        long N = b.tokens(), C = c.hiddenSize(), I = c.intermediateSize();
        long perToken = C /* residual */ + C /* after attention */ + C /* ln1 */ + 1 /* rstd1 */ + c.qDim() /* q */
                + 2L * c.kvDim() /* k, v */ + c.qDim() /* att */ + C /* ln2 */ + 1 /* rstd2 */ + 3 * I /* gate, up, swi */;
        long lse = (long) b.batch() * c.numHeads() * b.time();
        return 4 * (N * perToken + lse);
    }

    @Test
    void anInferenceOnlyForwardKeepsOneLayersBuffers() {
        try (CpuBackend backend = new CpuBackend(1); LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            ModelConfig c = model.config();
            assertTrue(c.numLayers() >= 2, "the fixture has " + c.numLayers() + " layers");
            long base = backend.liveBytes();
            TokenStats kept = model.forward(List.of(BATCH), true, true).get(0);
            long forBackward = backend.liveBytes() - base;
            model.releaseActivations();
            assertEquals(base, backend.liveBytes(), "releasing the activations frees all they hold");

            TokenStats scored = model.forward(List.of(BATCH), true, false).get(0);
            long inferenceOnly = backend.liveBytes() - base;
            assertEquals((c.numLayers() - 1) * layerBytes(c, BATCH), forBackward - inferenceOnly);
            assertArrayEquals(kept.logprobs(), scored.logprobs());
            assertArrayEquals(kept.entropies(), scored.entropies());

            float[] d = new float[BATCH.batch() * (BATCH.time() - 1)];
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.backward(d, null));
            assertTrue(e.getMessage().contains("inference-only"), e.getMessage());
            model.releaseActivations();
            assertEquals(base, backend.liveBytes());
        }
    }

    @Test
    void inferenceOnlyScoresAndValuesMatchAndRefuseABackward() {
        try (CpuBackend backend = new CpuBackend(1);
             LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama-reward"))) {
            float[] scores = model.scores(BATCH);
            float[] values = model.values(BATCH);
            assertArrayEquals(scores, model.scores(List.of(BATCH), false).get(0));
            assertThrows(IllegalStateException.class, () -> model.backwardScores(new float[BATCH.batch()]));
            assertArrayEquals(values, model.values(List.of(BATCH), false).get(0));
            assertThrows(IllegalStateException.class, () -> model.backwardValues(new float[BATCH.tokens()]));
        }
    }
}
