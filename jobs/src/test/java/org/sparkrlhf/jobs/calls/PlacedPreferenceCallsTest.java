package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.algorithms.GroupWeights;
import org.sparkrlhf.jobs.algorithms.PreferenceLosses;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.OPTIMIZER;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PAD;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PROMPTS;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.RESPONSES;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_REWARD;

/**
 * The preference train calls on pipeline and tensor shards (ranks as threads of this JVM, TCP
 * between them): the step of one whole replica.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class PlacedPreferenceCallsTest {
    static final int PAIRS = PROMPTS.length / 2;

    /** GR-DPO on two pipeline stages in two micro-batches (the forward-only pass and the weights included). */
    @Test
    void grDpoOnTwoPipelineStagesTakesTheWholeModelsStep() throws Exception {
        String whole = "placed-pref-test-whole";
        String stages = "placed-pref-test-pp2";
        List<String> names = List.of("a", "b");
        PreferenceTrainCall.Robust robust = new PreferenceTrainCall.Robust(names, new long[]{30, 10}, 0.5, 1.0,
                GroupWeights.Scaling.DATASET, new GroupWeights.State(names, List.of(0.5, 0.5)), new int[]{0, 1, 1, 0});
        float[][] ref = PreferenceTrainCallTest.REF;
        try {
            PreferenceTrainCall.Result expected;
            try (RankContext context = PreferencePairsFixture.context("actor_train", 0, 1, null)) {
                expected = new PreferenceTrainCall().apply(context, dpo(whole, robust, ref));
            }
            Placement pp2 = PreferencePairsFixture.mesh("actor_train", 1, 1, 2, 2);
            List<PreferenceTrainCall.Result> ranks = PreferencePairsFixture.onRanks("actor_train", pp2,
                    Collections.nCopies(2, dpo(stages, robust, ref)), new PreferenceTrainCall());
            for (PreferenceTrainCall.Result r : ranks) {
                assertEquals(expected.loss(), r.loss(), 1e-5 * Math.abs(expected.loss()));
                assertEquals(expected.gradNorm(), r.gradNorm(), 1e-4 * expected.gradNorm());
                assertArrayEquals(expected.margins(), r.margins(), 1e-5f);
                assertArrayEquals(expected.groupLossSums(), r.groupLossSums(), 1e-5);
                for (int g = 0; g < names.size(); g++) {
                    assertEquals(expected.weights().weights().get(g), r.weights().weights().get(g), 1e-6);
                }
                assertEquals(1, r.version());
            }
            assertTrue(PreferencePairsFixture.stored(stages, 1, pp2.key(), 1).isSharded());
        } finally {
            PreferencePairsFixture.release(whole);
            PreferencePairsFixture.release(stages);
        }
    }

    /** RW on two tensor-parallel ranks (the sharded score head's forward and backward). */
    @Test
    void rewardModelOnTwoTensorShardsTakesTheWholeModelsStep() throws Exception {
        String whole = "placed-rw-test-whole";
        String shards = "placed-rw-test-tp2";
        try {
            RewardTrainCall.Result expected;
            try (RankContext context = PreferencePairsFixture.context("reward_train", 0, 1, null)) {
                expected = new RewardTrainCall().apply(context, rw(whole));
            }
            Placement tp2 = PreferencePairsFixture.mesh("reward_train", 1, 2, 1, 1);
            List<RewardTrainCall.Result> ranks = PreferencePairsFixture.onRanks("reward_train", tp2,
                    Collections.nCopies(2, rw(shards)), new RewardTrainCall());
            for (RewardTrainCall.Result r : ranks) {
                assertEquals(expected.loss(), r.loss(), 1e-5 * expected.loss());
                assertEquals(expected.gradNorm(), r.gradNorm(), 1e-4 * expected.gradNorm());
                assertEquals(expected.meanMargin(), r.meanMargin(), 1e-5);
                assertEquals(1, r.version());
            }
            assertTrue(PreferencePairsFixture.stored(shards, 1, tp2.key(), 1).isSharded());
        } finally {
            PreferencePairsFixture.release(whole);
            PreferencePairsFixture.release(shards);
        }
    }

    private static PreferenceTrainCall.Slice dpo(String role, PreferenceTrainCall.Robust robust, float[][] ref) {
        return new PreferenceTrainCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 0, 1, OPTIMIZER,
                PROMPTS, RESPONSES, ref, PreferenceLosses.Kind.DPO, 0.1, robust, PAD, PAIRS);
    }

    private static RewardTrainCall.Slice rw(String role) {
        return new RewardTrainCall.Slice(role, new ModelSource(TINY_REWARD.toString(), 0), 0, 1, OPTIMIZER, 7,
                PROMPTS, RESPONSES, PAIRS);
    }
}
