package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.algorithms.GroupWeights;
import org.sparkrlhf.jobs.algorithms.PreferenceLosses;
import org.sparkrlhf.jobs.algorithms.SequenceLogprobs;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.OPTIMIZER;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PAD;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PROMPTS;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.RESPONSES;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;

/**
 * The preference train call (no Spark) on the tiny fixture model against the same step assembled
 * by hand from the model's own forward: LlamaModel.forward, SequenceLogprobs, PreferenceLosses
 * (and GroupWeights for the robust variants), the model's backward.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PreferenceTrainCallTest {
    static final int PAIRS = PROMPTS.length / 2;
    static final double BETA = 0.1;

    /** The reference's token log-probs: the fixture model's own, moved so that h is not 0 at the first step. */
    static final float[][] REF = reference();

    @Test
    void dpoStepIsThePreferenceLossOfTheModelsForward() {
        String role = "pref-train-test-dpo";
        PreferenceTrainCall.Result result;
        try (RankContext context = PreferencePairsFixture.context("actor_train", 0, 1, null)) {
            result = new PreferenceTrainCall().apply(context, slice(role, PreferenceLosses.Kind.DPO, null,
                    PROMPTS, RESPONSES, REF, 1));
        }
        try (HandStep hand = new HandStep()) {
            PreferenceLosses.Result expected = hand.losses(PreferenceLosses.Kind.DPO, null);
            assertNotEquals((float) Math.log(2), expected.loss(), 1e-3f, "the reference differs from the policy");
            assertEquals(expected.loss(), result.loss(), 1e-6);
            assertArrayEquals(expected.pairLosses(), result.pairLosses(), 1e-5f);
            assertArrayEquals(expected.margins(), result.margins(), 1e-5f);
            assertEquals(expected.accuracy(), result.accuracy(), 1e-6);
            assertEquals(mean(expected.margins()), result.meanMargin(), 1e-6);
            assertEquals(PAIRS, result.pairs());
            assertEquals(1, result.version());
            assertNull(result.weights());
            Map<String, float[]> grads = hand.gradients(expected);
            ResidentModel replica = PreferencePairsFixture.stored(role, 1, "dp1.tp1.pp1", 0);
            PreferencePairsFixture.assertTensorsClose(grads, PreferencePairsFixture.gradients(replica.model()), 1e-4);
            assertEquals(norm(grads), result.gradNorm(), 1e-4 * norm(grads));
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    /**
     * GR-IPO in two micro-batches: the weights after the call are GroupWeights.update on the pairs'
     * IPO losses at the policy before the step, and the step is the loss with the updated weights.
     */
    @Test
    void grIpoUpdatesTheWeightsFromTheLossesBeforeTheStep() {
        String role = "pref-train-test-gr-ipo";
        List<String> names = List.of("a", "b");
        long[] sizes = {30, 10};
        int[] pairGroups = {0, 0, 1, 0};
        GroupWeights.State prior = new GroupWeights.State(names, List.of(0.6, 0.4));
        PreferenceTrainCall.Robust robust = new PreferenceTrainCall.Robust(names, sizes, 0.01, 1.0,
                GroupWeights.Scaling.DATASET, prior, pairGroups);
        PreferenceTrainCall.Result result;
        RankContext context = PreferencePairsFixture.placed("actor_train", 2);
        try (context) {
            result = new PreferenceTrainCall().apply(context, slice(role, PreferenceLosses.Kind.IPO, robust,
                    PROMPTS, RESPONSES, REF, 1));
        }
        try (HandStep hand = new HandStep()) {
            PreferenceLosses.Result before = hand.losses(PreferenceLosses.Kind.IPO, null);
            GroupWeights weights = new GroupWeights(names, sizes, 0.01, 1.0, GroupWeights.Scaling.DATASET);
            weights.restore(prior);
            double[] groupLosses = weights.groupLosses(before.pairLosses(), pairGroups);
            double[] updated = weights.update(groupLosses);
            PreferenceLosses.Result expected = hand.losses(PreferenceLosses.Kind.IPO, weights.pairWeights(pairGroups));

            assertEquals(names, result.weights().groups());
            for (int g = 0; g < names.size(); g++) {
                assertEquals(updated[g], result.weights().weights().get(g), 1e-6);
            }
            assertNotEquals(prior.weights().get(0), result.weights().weights().get(0), 1e-4, "the weights moved");
            assertArrayEquals(new long[]{3, 1}, result.groupPairs());
            assertEquals(before.pairLosses()[0] + before.pairLosses()[1] + before.pairLosses()[3],
                    result.groupLossSums()[0], 1e-4 * result.groupLossSums()[0]);
            assertEquals(before.pairLosses()[2], result.groupLossSums()[1], 1e-4 * result.groupLossSums()[1]);
            assertArrayEquals(before.pairLosses(), result.pairLosses(), 1e-4f);
            assertEquals(weights.objective(groupLosses), expected.loss(), 1e-4 * expected.loss());
            assertEquals(expected.loss(), result.loss(), 1e-5 * expected.loss());
            ResidentModel replica = PreferencePairsFixture.stored(role, 1, context.layoutKey(), 0);
            PreferencePairsFixture.assertTensorsClose(hand.gradients(expected),
                    PreferencePairsFixture.gradients(replica.model()), 1e-4);
        } finally {
            PreferencePairsFixture.release(role);
        }
    }

    /**
     * GR-DPO on two data-parallel ranks (two pairs each, the groups unevenly spread) gives the loss,
     * the group weights and the summed gradient of one rank on all four pairs, and both replicas
     * take the same step.
     */
    @Test
    void twoDataParallelRanksTakeTheStepOfOne() throws Exception {
        List<String> names = List.of("a", "b");
        int[] pairGroups = {0, 0, 1, 0};
        GroupWeights.State uniform = new GroupWeights.State(names, List.of(0.5, 0.5));
        String one = "pref-train-test-dp1";
        String two = "pref-train-test-dp2";
        try {
            PreferenceTrainCall.Result single;
            try (RankContext context = PreferencePairsFixture.context("actor_train", 0, 1, null)) {
                single = new PreferenceTrainCall().apply(context, slice(one, PreferenceLosses.Kind.DPO,
                        robust(names, uniform, pairGroups), PROMPTS, RESPONSES, REF, 1));
            }
            List<PreferenceTrainCall.Slice> slices = List.of(
                    slice(two, PreferenceLosses.Kind.DPO, robust(names, uniform, Arrays.copyOfRange(pairGroups, 0, 2)),
                            PreferencePairsFixture.rows(PROMPTS, 0, 2), PreferencePairsFixture.rows(RESPONSES, 0, 2),
                            PreferencePairsFixture.rows(REF, 0, 2), 2),
                    slice(two, PreferenceLosses.Kind.DPO, robust(names, uniform, Arrays.copyOfRange(pairGroups, 2, 4)),
                            PreferencePairsFixture.rows(PROMPTS, 2, 4), PreferencePairsFixture.rows(RESPONSES, 2, 4),
                            PreferencePairsFixture.rows(REF, 2, 4), 2));
            List<PreferenceTrainCall.Result> ranks = PreferencePairsFixture.onRanks("actor_train", slices,
                    new PreferenceTrainCall());
            for (PreferenceTrainCall.Result r : ranks) {
                assertEquals(single.loss(), r.loss(), 1e-5 * Math.abs(single.loss()));
                assertEquals(single.gradNorm(), r.gradNorm(), 1e-4 * single.gradNorm());
                assertArrayEquals(single.groupPairs(), r.groupPairs());
                assertArrayEquals(single.groupLossSums(), r.groupLossSums(), 1e-5);
                for (int g = 0; g < names.size(); g++) {
                    assertEquals(single.weights().weights().get(g), r.weights().weights().get(g), 1e-6);
                }
                assertEquals(1, r.version());
            }
            assertArrayEquals(single.margins(), concat(ranks.get(0).margins(), ranks.get(1).margins()), 1e-5f);
            Map<String, float[]> expected = PreferencePairsFixture.gradients(
                    PreferencePairsFixture.stored(one, 1, "dp1.tp1.pp1", 0).model());
            ResidentModel rank0 = PreferencePairsFixture.stored(two, 1, "dp2.tp1.pp1", 0);
            ResidentModel rank1 = PreferencePairsFixture.stored(two, 1, "dp2.tp1.pp1", 1);
            PreferencePairsFixture.assertTensorsClose(expected, PreferencePairsFixture.gradients(rank0.model()), 1e-4);
            for (String name : expected.keySet()) {
                assertArrayEquals(rank0.tensor(name), rank1.tensor(name), name + ": the replicas stay identical");
            }
        } finally {
            PreferencePairsFixture.release(one);
            PreferencePairsFixture.release(two);
        }
    }

    private static PreferenceTrainCall.Robust robust(List<String> names, GroupWeights.State state, int[] pairGroups) {
        return new PreferenceTrainCall.Robust(names, new long[]{30, 10}, 0.5, 0.5, GroupWeights.Scaling.BATCH, state,
                pairGroups);
    }

    private static PreferenceTrainCall.Slice slice(String role, PreferenceLosses.Kind kind, PreferenceTrainCall.Robust robust,
                                                   int[][] prompts, int[][] responses, float[][] ref, int dp) {
        return new PreferenceTrainCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 0, dp, OPTIMIZER,
                prompts, responses, ref, kind, BETA, robust, PAD, PAIRS);
    }

    /** The step by hand on the whole batch: one forward of the fixture model, the loss, one backward. */
    private static final class HandStep implements AutoCloseable {
        final CpuBackend backend = new CpuBackend();
        final LlamaModel model = LlamaModel.load(backend, TINY_LLAMA);
        final ResponseBatch batch = ResponseBatch.of(PROMPTS, RESPONSES, PAD);
        final float[] policy;
        final float[] ref;

        HandStep() {
            TokenStats stats = model.forward(batch.batch(), false);
            policy = SequenceLogprobs.sums(stats.logprobs(), batch.responseMask(), PROMPTS.length).sums();
            ref = SequenceLogprobs.sums(batch.spread(REF), batch.responseMask(), PROMPTS.length).sums();
        }

        PreferenceLosses.Result losses(PreferenceLosses.Kind kind, float[] weights) {
            return PreferenceLosses.compute(kind, PreferencePairsFixture.even(policy), PreferencePairsFixture.odd(policy),
                    PreferencePairsFixture.even(ref), PreferencePairsFixture.odd(ref), BETA, weights, PAIRS);
        }

        /** The gradients of {@code loss} (the forward's activations are still there). */
        Map<String, float[]> gradients(PreferenceLosses.Result loss) {
            float[] dSums = new float[PROMPTS.length];
            for (int i = 0; i < PAIRS; i++) {
                dSums[2 * i] = loss.dChosen()[i];
                dSums[2 * i + 1] = loss.dRejected()[i];
            }
            model.zeroGradients();
            model.backward(SequenceLogprobs.tokenGradients(dSums, batch.responseMask()), null);
            return PreferencePairsFixture.gradients(model);
        }

        @Override
        public void close() {
            model.close();
            backend.close();
        }
    }

    private static float[][] reference() {
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, TINY_LLAMA)) {
            ResponseBatch batch = ResponseBatch.of(PROMPTS, RESPONSES, PAD);
            float[] logprobs = model.forward(batch.batch(), false).logprobs();
            float[][] out = new float[PROMPTS.length][];
            for (int b = 0; b < out.length; b++) {
                out[b] = batch.response(logprobs, b);
                for (int j = 0; j < out[b].length; j++) {
                    out[b][j] += (b % 2 == 0 ? 0.4f : -0.3f) * (b / 2 - 1.5f) + 0.01f * j;
                }
            }
            return out;
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static double mean(float[] x) {
        double s = 0;
        for (float v : x) {
            s += v;
        }
        return s / x.length;
    }

    private static double norm(Map<String, float[]> grads) {
        double s = 0;
        for (float[] g : grads.values()) {
            for (float v : g) {
                s += (double) v * v;
            }
        }
        return Math.sqrt(s);
    }
}
