package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.algorithms.SequenceLogprobs;
import org.sparkrlhf.jobs.executor.RankContext;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.OPTIMIZER;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PAD;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PROMPTS;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.RESPONSES;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_REWARD;

/**
 * The preference eval call (no Spark), in two micro-batches, against one forward of the whole batch
 * through the fixture models.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PreferenceEvalCallTest {

    @Test
    void summedLogprobsOfAFrozenPolicy() {
        String role = "pref-eval-test-ref";
        float[] expected;
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, TINY_LLAMA)) {
            ResponseBatch batch = ResponseBatch.of(PROMPTS, RESPONSES, PAD);
            expected = SequenceLogprobs.sums(model.forward(batch.batch(), false).logprobs(), batch.responseMask(),
                    PROMPTS.length).sums();
        }
        try (RankContext context = PreferencePairsFixture.placed("ref_eval", 2)) {
            PreferenceEvalCall.Result result = new PreferenceEvalCall().apply(context, new PreferenceEvalCall.Slice(role,
                    new ModelSource(TINY_LLAMA.toString(), 0), 0, 1, null, 0, PreferenceEvalCall.Output.LOGPROBS,
                    PROMPTS, RESPONSES, PAD));
            assertArrayEquals(PreferencePairsFixture.even(expected), result.chosen(), 1e-4f);
            assertArrayEquals(PreferencePairsFixture.odd(expected), result.rejected(), 1e-4f);
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    @Test
    void scoresOfAFrozenAndOfATrainedRewardModel() {
        String frozen = "pref-eval-test-reward";
        String trained = "pref-eval-test-rw";
        long headSeed = 7;
        float[] reward;
        float[] fresh;
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, TINY_REWARD);
             LlamaModel critic = Critics.load(backend, TINY_LLAMA, headSeed)) {
            reward = model.scores(ResponseBatch.of(PROMPTS, RESPONSES, PAD).batch());
            fresh = critic.scores(ResponseBatch.of(PROMPTS, RESPONSES, PAD).batch());
        }
        try (RankContext context = PreferencePairsFixture.placed("reward_eval", 2)) {
            PreferenceEvalCall.Result a = new PreferenceEvalCall().apply(context, new PreferenceEvalCall.Slice(frozen,
                    new ModelSource(TINY_REWARD.toString(), 0), 0, 1, null, 0, PreferenceEvalCall.Output.SCORES,
                    PROMPTS, RESPONSES, PAD));
            assertArrayEquals(PreferencePairsFixture.even(reward), a.chosen(), 1e-5f);
            assertArrayEquals(PreferencePairsFixture.odd(reward), a.rejected(), 1e-5f);
            // RW's model at version 0 from a causal LM: the decoder with the fresh head RewardTrainCall starts from
            PreferenceEvalCall.Result b = new PreferenceEvalCall().apply(context, new PreferenceEvalCall.Slice(trained,
                    new ModelSource(TINY_LLAMA.toString(), 0), 0, 1, OPTIMIZER, headSeed,
                    PreferenceEvalCall.Output.SCORES, PROMPTS, RESPONSES, PAD));
            assertArrayEquals(PreferencePairsFixture.even(fresh), b.chosen(), 1e-5f);
            assertArrayEquals(PreferencePairsFixture.odd(fresh), b.rejected(), 1e-5f);
        } finally {
            PreferencePairsFixture.release(frozen);
            PreferencePairsFixture.release(trained);
        }
    }
}
