package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.OPTIMIZER;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PAD;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PROMPTS;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.RESPONSES;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_REWARD;

/**
 * The generate and inference calls in the plan's micro-batches (no Spark) give every row what one
 * batch gives it: bit for bit on the CPU engine's reference kernels, where a row's arithmetic does
 * not depend on the rows beside it, on how far its batch is padded, or on pipeline stages
 * overlapping micro-batches; within {@link #ROUNDING} on the OpenBLAS kernels (and on CUDA), whose
 * matrix products block by the batch's shape and so round differently.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class MicroBatchedCallsTest {
    /** How far a row may move with its batch's shape: 0 on the reference kernels. */
    static final float ROUNDING = org.sparkrlhf.gpuexec.backend.cpu.CpuKernels.defaultKernels()
            == org.sparkrlhf.gpuexec.backend.cpu.CpuKernels.REFERENCE ? 0f : 2e-5f;

    static final int[] EOS = {2};

    @Test
    void refLogprobsInThreeMicroBatchesAreThoseOfOneBatch() throws Exception {
        String role = "mb-test-ref";
        try {
            RefLogprobsCall.Slice slice = new RefLogprobsCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 1,
                    PROMPTS, RESPONSES, PAD);
            float[][] one = onOneDevice("ref_inf", 1, slice, new RefLogprobsCall());
            float[][] three = onOneDevice("ref_inf", 3, slice, new RefLogprobsCall());
            assertRowsEqual(one, three, ROUNDING);
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    @Test
    void valuesOfATrainedAndOfAFrozenCriticInMicroBatches() throws Exception {
        String trained = "mb-test-critic";
        String frozen = "mb-test-frozen-critic";
        try {
            // the trained critic: the actor's decoder with a fresh value head; the frozen one: a value model as it is
            ValuesCall.Slice fresh = new ValuesCall.Slice(trained, new ModelSource(TINY_LLAMA.toString(), 0), 0, 1,
                    OPTIMIZER, 7, PROMPTS, RESPONSES, PAD);
            assertRowsEqual(onOneDevice("critic_inf", 1, fresh, new ValuesCall()),
                    onOneDevice("critic_inf", 4, fresh, new ValuesCall()), ROUNDING);
            ValuesCall.Slice given = new ValuesCall.Slice(frozen, new ModelSource(TINY_REWARD.toString(), 0), 0, 1,
                    null, 7, PROMPTS, RESPONSES, PAD);
            float[][] one = onOneDevice("critic_inf", 1, given, new ValuesCall());
            assertRowsEqual(one, onOneDevice("critic_inf", 3, given, new ValuesCall()), ROUNDING);
            // a frozen value model's values are its per-position scores (its own head, no fresh one)
            try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, TINY_REWARD)) {
                ResponseBatch batch = ResponseBatch.of(PROMPTS, RESPONSES, PAD);
                float[] values = model.values(batch.batch());
                for (int b = 0; b < PROMPTS.length; b++) {
                    assertArrayEquals(ValuePositions.response(batch, values, b), one[b], ROUNDING, "row " + b);
                }
            }
        } finally {
            PreferencePairsFixture.release(trained);
            PreferencePairsFixture.release(frozen);
        }
    }

    @Test
    void rewardScoresInMicroBatchesAreThoseOfOneBatch() throws Exception {
        String role = "mb-test-reward";
        try {
            RewardModelCall.Slice slice = new RewardModelCall.Slice(role, new ModelSource(TINY_REWARD.toString(), 0), 1,
                    PROMPTS, RESPONSES);
            float[] one = onOneDevice("reward_inf", 1, slice, new RewardModelCall());
            float[] three = onOneDevice("reward_inf", 3, slice, new RewardModelCall());
            assertArrayEquals(one, three, ROUNDING);
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    @Test
    void samplesAndTheirLogprobsInMicroBatchesAreThoseOfOneBatch() throws Exception {
        String role = "mb-test-actor";
        try {
            GenerateCall.Slice slice = generate(role);
            GenerateCall.Result one = onOneDevice("actor_gen", 1, slice, new GenerateCall());
            GenerateCall.Result three = onOneDevice("actor_gen", 3, slice, new GenerateCall());
            assertGenerated(one, three, ROUNDING);
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    /** Two pipeline stages in two micro-batches: the stages overlap, every row keeps its one-batch result. */
    @Test
    void twoPipelineStagesInTwoMicroBatches() throws Exception {
        String whole = "mb-test-pp-whole";
        String stages = "mb-test-pp2";
        try {
            RefLogprobsCall.Slice ref = new RefLogprobsCall.Slice(whole, new ModelSource(TINY_LLAMA.toString(), 0), 1,
                    PROMPTS, RESPONSES, PAD);
            float[][] expected = onOneDevice("ref_inf", 1, ref, new RefLogprobsCall());
            Placement pp2 = PreferencePairsFixture.mesh("ref_inf", 1, 1, 2, 2);
            RefLogprobsCall.Slice refStages = new RefLogprobsCall.Slice(stages, ref.source(), 1, PROMPTS, RESPONSES, PAD);
            for (float[][] rank : PreferencePairsFixture.onRanks("ref_inf", pp2, Collections.nCopies(2, refStages),
                    new RefLogprobsCall())) {
                assertRowsEqual(expected, rank, ROUNDING);
            }

            GenerateCall.Result sampled = onOneDevice("actor_gen", 1, generate(whole), new GenerateCall());
            Placement genPp2 = PreferencePairsFixture.mesh("actor_gen", 1, 1, 2, 2);
            for (GenerateCall.Result rank : PreferencePairsFixture.onRanks("actor_gen", genPp2,
                    Collections.nCopies(2, generate(stages)), new GenerateCall())) {
                assertGenerated(sampled, rank, ROUNDING);
            }
        } finally {
            PreferencePairsFixture.release(whole);
            PreferencePairsFixture.release(stages);
        }
    }

    /** Two samples of each of four prompts of different lengths, at temperature 1, with their logprobs. */
    private static GenerateCall.Slice generate(String role) {
        int[][] prompts = {{1, 40, 41, 42}, {1, 50}, {1, 60, 61, 62, 63, 64}, {1, 45, 46}};
        return new GenerateCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 0, 1, OPTIMIZER, prompts, 10, 2,
                6, 1f, 0, 1f, 1234L, EOS, PAD, true);
    }

    private static <S, R> R onOneDevice(String call, int microBatches, S slice, RankFunction<S, R> function) throws Exception {
        try (RankContext context = PreferencePairsFixture.placed(call, microBatches)) {
            return function.apply(context, slice);
        }
    }

    private static void assertGenerated(GenerateCall.Result expected, GenerateCall.Result actual, float delta) {
        assertEquals(expected.responses().length, actual.responses().length);
        for (int k = 0; k < expected.responses().length; k++) {
            assertArrayEquals(expected.responses()[k], actual.responses()[k], "sample " + k);
        }
        assertArrayEquals(expected.stoppedAtEos(), actual.stoppedAtEos());
        assertRowsEqual(expected.logprobs(), actual.logprobs(), delta);
    }

    private static void assertRowsEqual(float[][] expected, float[][] actual, float delta) {
        assertEquals(expected.length, actual.length);
        for (int b = 0; b < expected.length; b++) {
            assertArrayEquals(expected[b], actual[b], delta, "row " + b);
        }
    }
}
