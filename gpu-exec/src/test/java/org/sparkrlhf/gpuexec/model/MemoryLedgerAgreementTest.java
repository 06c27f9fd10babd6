package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.planner.cost.MemoryModel;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The planner's memory model against the engine's allocation ledger for the same call, on one
 * device (the CPU backend emulating the bf16 mode the planner assumes: bf16 activations and
 * caches): a train call's forward and backward, an inference forward longer than one pass, and a
 * generation. The ledger's peak above what was live before the call (weights, and gradients for
 * the train call) is the call's memory. The planner counts every tensor these calls allocate, so
 * the two agree to the byte here; the 1% tolerance is for heads it does not count (a reward
 * model's per-row score buffers).
 */
class MemoryLedgerAgreementTest {
    static final double TOLERANCE = 0.01;
    static final ParallelStrategy ONE = ParallelStrategy.of(1, 1, 1, 1);

    static ModelSpec spec(ModelConfig c) {
        return new ModelSpec("fixture", c.numLayers(), c.hiddenSize(), c.intermediateSize(), c.numHeads(), c.numKvHeads(),
                c.headDim(), c.vocabSize(), c.tieWordEmbeddings(), c.qkvBias(), c.head() != ModelConfig.Head.CAUSAL_LM);
    }

    static Batch randomBatch(int rows, int time, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[][] seqs = new int[rows][time];
        for (int[] s : seqs) for (int t = 0; t < time; t++) s[t] = 1 + r.nextInt(vocab - 1);
        return Batch.rightPadded(seqs, 0);
    }

    static void assertAgrees(String call, double planned, long ledger) {
        System.out.printf("%s: planner %.0f bytes, engine ledger %d bytes (%.3f%%)%n", call, planned, ledger, 100 * (planned - ledger) / ledger);
        assertEquals(ledger, planned, TOLERANCE * ledger, call + ": the planner's estimate against the engine's peak");
    }

    @Test
    void aTrainCallsForwardAndBackward() {
        try (CpuBackend backend = new CpuBackend(1).storeActivationsAs(DType.BF16);
             LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            Batch batch = randomBatch(8, 48, model.config().vocabSize(), 1);
            float[] d = new float[batch.batch() * (batch.time() - 1)];
            java.util.Arrays.fill(d, 0.01f);
            model.forward(List.of(batch), false, true);
            model.backward(d, null); // allocates the gradients, part of the training state
            model.releaseActivations();
            long base = backend.liveBytes();
            backend.resetPeakBytes();
            model.forward(List.of(batch), false, true);
            model.backward(d, null);
            long peak = backend.peakBytes() - base;
            assertAgrees("train", MemoryModel.trainActivationBytes(spec(model.config()), ONE, batch.tokens(), false), peak);
        }
    }

    @Test
    void anInferenceForwardOfMoreThanOnePass() {
        try (CpuBackend backend = new CpuBackend(1).storeActivationsAs(DType.BF16);
             LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            Batch batch = randomBatch(300, 32, model.config().vocabSize(), 2);
            long base = backend.liveBytes();
            backend.resetPeakBytes();
            model.forward(List.of(batch), false, false);
            long peak = backend.peakBytes() - base;
            model.releaseActivations();
            assertAgrees("inference", MemoryModel.inferenceActivationBytes(spec(model.config()), ONE, batch.tokens(), batch.time()), peak);
        }
    }

    @Test
    void aGeneration() {
        int sequences = 16, promptLen = 12, newTokens = 20;
        try (CpuBackend backend = new CpuBackend(1).storeActivationsAs(DType.BF16);
             LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"))) {
            Batch prompts = randomBatch(sequences, promptLen, model.config().vocabSize(), 3);
            int[][] rows = new int[sequences][];
            for (int b = 0; b < sequences; b++) rows[b] = java.util.Arrays.copyOfRange(prompts.ids(), b * promptLen, (b + 1) * promptLen);
            long base = backend.liveBytes();
            backend.resetPeakBytes();
            try (Generator g = new Generator(model)) {
                g.generate(rows, new Generator.Options(newTokens, new SamplingParams(1f, 0, 1f), 5, new int[0], 0, false));
            }
            long peak = backend.peakBytes() - base;
            assertAgrees("generate", MemoryModel.generateActivationBytes(spec(model.config()), ONE, sequences, promptLen,
                    promptLen + newTokens), peak);
        }
    }
}
