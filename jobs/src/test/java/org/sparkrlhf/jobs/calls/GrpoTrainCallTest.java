package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.algorithms.Losses;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One rank of GRPO's actor_train (no Spark) on the tiny fixture model: the step's loss is the GRPO
 * loss of the rows under the initial weights, and the step raises the likelihood of the response
 * with a positive advantage and lowers that of the response with a negative one.
 */
class GrpoTrainCallTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();
    static final int PAD = 0;

    @Test
    void stepFollowsTheAdvantages() {
        String role = "grpo-call-test-actor";
        int[][] prompts = {{1, 40, 41, 42}, {1, 40, 41, 42}, {1, 50, 51}};
        int[][] responses = {{60, 61, 2}, {70, 71, 72}, {80, 2}};
        float[] advantages = {1f, -1f, 0f};
        float[][] before = responseLogprobs(null, prompts, responses);
        int tokens = 3 + 3 + 2;

        RunConfig.OptimizerConfig optimizer = new RunConfig.OptimizerConfig(1e-3, 0.9, 0.95, 1e-8, 0.0, 0.0, 0);
        GrpoTrainCall.Slice slice = new GrpoTrainCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 0, 1,
                optimizer, prompts, responses, before, before, advantages,
                0.2, 0.04, 1, new MiniBatches(new int[]{0, responses.length}, new int[]{tokens}), PAD);
        GrpoTrainCall.Result result;
        try (RankContext context = new RankContext("actor_train", 0, 1, "driver", "127.0.0.1", null, null, 1000)) {
            result = new GrpoTrainCall().apply(context, slice);
        }
        // reference: at the sampling policy the ratio is 1 and the KL to an identical reference is 0,
        // so the loss is -(sum over rows of advantage * response length) / tokens
        ResponseBatch batch = ResponseBatch.of(prompts, responses, PAD);
        float[][] perRow = {{1f, 1f, 1f}, {-1f, -1f, -1f}, {0f, 0f}};
        float[] old = batch.spread(before);
        Losses.PolicyResult expected = Losses.grpoPolicy(old, old, batch.spread(perRow), old, batch.responseMask(), 0.2,
                0.04, tokens);
        assertEquals(-(3.0 - 3.0) / tokens, expected.loss(), 1e-6);
        assertEquals(expected.loss(), result.loss(), 1e-5);
        assertEquals(1, result.version());
        assertEquals(1, result.steps());
        assertEquals(tokens, result.tokens());
        assertTrue(result.gradNorm() > 0);

        ModelStore.Key trained = new ModelStore.Key(role, 1, "dp1.tp1.pp1", 0);
        ResidentModel replica = ModelStore.get().find(trained);
        assertNotNull(replica, "the stepped replica is kept under version 1");
        float[][] after = responseLogprobs(replica.model(), prompts, responses);
        assertTrue(sum(after[0]) > sum(before[0]), "positive advantage: " + sum(before[0]) + " -> " + sum(after[0]));
        assertTrue(sum(after[1]) < sum(before[1]), "negative advantage: " + sum(before[1]) + " -> " + sum(after[1]));
        ModelStore.get().remove(trained);
        replica.close();
    }

    @Test
    void responseLogprobsSitAfterThePrompt() {
        int[][] prompts = {{1, 40, 41}, {1, 50}};
        int[][] responses = {{60, 2}, {70, 71, 72}};
        ResponseBatch batch = ResponseBatch.of(prompts, responses, PAD);
        assertEquals(4, batch.steps());
        assertArrayEquals(new int[]{0, 0, 1, 1, 0, 1, 1, 1}, batch.responseMask());
        float[] perToken = {0f, 1f, 2f, 3f, 10f, 11f, 12f, 13f};
        assertArrayEquals(new float[]{2f, 3f}, batch.response(perToken, 0));
        assertArrayEquals(new float[]{11f, 12f, 13f}, batch.response(perToken, 1));
        assertArrayEquals(new float[]{0f, 0f, 5f, 6f, 0f, 7f, 8f, 9f},
                batch.spread(new float[][]{{5f, 6f}, {7f, 8f, 9f}}));
    }

    /** Each response's token logprobs under {@code model} (the fixture model when null). */
    private static float[][] responseLogprobs(LlamaModel model, int[][] prompts, int[][] responses) {
        ResponseBatch batch = ResponseBatch.of(prompts, responses, PAD);
        CpuBackend backend = model == null ? new CpuBackend() : null;
        LlamaModel m = model == null ? LlamaModel.load(backend, TINY_LLAMA) : model;
        try {
            TokenStats stats = m.forward(batch.batch(), false);
            m.releaseActivations();
            float[][] out = new float[prompts.length][];
            for (int b = 0; b < prompts.length; b++) {
                out[b] = batch.response(stats.logprobs(), b);
            }
            return out;
        } finally {
            if (model == null) {
                m.close();
                backend.close();
            }
        }
    }

    private static double sum(float[] x) {
        double s = 0;
        for (float v : x) {
            s += v;
        }
        return s;
    }
}
