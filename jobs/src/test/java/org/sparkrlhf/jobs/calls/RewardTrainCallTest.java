package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.jobs.algorithms.BradleyTerry;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PROMPTS;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.RESPONSES;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_REWARD;

/** RW's reward-model train call (no Spark) on the tiny fixture models. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RewardTrainCallTest {
    static final int PAIRS = PROMPTS.length / 2;
    static final RunConfig.OptimizerConfig OPTIMIZER = new RunConfig.OptimizerConfig(1e-2, 0.9, 0.95, 1e-8, 0.0, 0.0, 0);
    static final long HEAD_SEED = 7;

    /** The first step's loss is Bradley-Terry of the fixture reward model's scores, and the loss falls over steps. */
    @Test
    void lossFallsOnPairsWhoseChosenResponseDiffers() {
        String role = "rw-train-test-falls";
        List<RewardTrainCall.Result> steps = new ArrayList<>();
        try (RankContext context = PreferencePairsFixture.context("reward_train", 0, 1, null)) {
            for (int s = 0; s < 6; s++) {
                steps.add(new RewardTrainCall().apply(context, slice(role, TINY_REWARD, 0, s)));
            }
        } finally {
            PreferencePairsFixture.release(role);
        }
        BradleyTerry.Result first = handLoss(TINY_REWARD);
        assertEquals(first.loss(), steps.get(0).loss(), 1e-6);
        assertEquals(first.accuracy(), steps.get(0).accuracy(), 1e-6);
        assertEquals(first.meanMargin(), steps.get(0).meanMargin(), 1e-5);
        for (int s = 1; s < steps.size(); s++) {
            assertTrue(steps.get(s).loss() < steps.get(s - 1).loss(), "step " + s + ": " + losses(steps));
            assertEquals(s + 1, steps.get(s).version());
        }
        assertTrue(steps.get(5).loss() < 0.5 * steps.get(0).loss(), losses(steps));
        assertEquals(1f, steps.get(5).accuracy(), losses(steps));
    }

    /**
     * A reward model without a pad token scores (and back-propagates) one row at a time: on these
     * rows, whose last token is never the pad token, the same step as the padded batch.
     */
    @Test
    void aModelWithoutAPadTokenTakesTheSameStepRowByRow(@TempDir Path tmp) throws IOException {
        Path noPad = tmp.resolve("reward-no-pad");
        Files.createDirectories(noPad);
        for (String file : List.of("model.safetensors", "tokenizer.json")) {
            Files.copy(TINY_REWARD.resolve(file), noPad.resolve(file));
        }
        Files.writeString(noPad.resolve("config.json"),
                Files.readString(TINY_REWARD.resolve("config.json")).replace("\"pad_token_id\": 0,", ""));
        assertEquals(-1, ModelConfig.read(noPad.resolve("config.json")).padTokenId());
        String padded = "rw-train-test-padded";
        String rowByRow = "rw-train-test-row-by-row";
        try (RankContext context = PreferencePairsFixture.context("reward_train", 0, 1, null)) {
            RewardTrainCall.Result a = new RewardTrainCall().apply(context, slice(padded, TINY_REWARD, 0, 0));
            RewardTrainCall.Result b = new RewardTrainCall().apply(context, slice(rowByRow, noPad, 0, 0));
            assertEquals(a.loss(), b.loss(), 1e-6);
            assertEquals(a.meanMargin(), b.meanMargin(), 1e-5);
            PreferencePairsFixture.assertTensorsClose(
                    PreferencePairsFixture.gradients(PreferencePairsFixture.stored(padded, 1, "dp1.tp1.pp1", 0).model()),
                    PreferencePairsFixture.gradients(PreferencePairsFixture.stored(rowByRow, 1, "dp1.tp1.pp1", 0).model()),
                    1e-4);
        } finally {
            PreferencePairsFixture.release(padded);
            PreferencePairsFixture.release(rowByRow);
        }
    }

    /**
     * A reward model trained from a causal LM (a fresh score head) saves as an HF
     * LlamaForSequenceClassification folder that reward_inf scores with as the trained copy does,
     * and a step from that folder (with its optimizer state) is the step the resident copy takes.
     */
    @Test
    void savedModelScoresInRewardInfAndContinuesTraining(@TempDir Path tmp) {
        String role = "rw-train-test-saved";
        String reloaded = "rw-train-test-reloaded";
        String frozen = "rw-train-test-reward-inf";
        Path dir = tmp.resolve("reward-v2");
        try (RankContext context = PreferencePairsFixture.context("reward_train", 0, 1, null)) {
            new RewardTrainCall().apply(context, slice(role, TINY_LLAMA, 0, 0));
            new RewardTrainCall().apply(context, slice(role, TINY_LLAMA, 0, 1));
            new SaveModelCall().apply(context, new SaveModelCall.Request(role, 2, "dp1.tp1.pp1", dir.toString(), true));
            ModelConfig saved = ModelConfig.read(dir.resolve("config.json"));
            assertEquals("LlamaForSequenceClassification", saved.architecture());
            assertEquals(ModelConfig.Head.SCORE, saved.head());

            ResidentModel trained = PreferencePairsFixture.stored(role, 2, "dp1.tp1.pp1", 0);
            float[] expected = RewardModelCall.scores(trained, PROMPTS, RESPONSES);
            float[] scored = new RewardModelCall().apply(context, new RewardModelCall.Slice(frozen,
                    new ModelSource(dir.toString(), 0), 1, PROMPTS, RESPONSES));
            assertArrayEquals(expected, scored, 1e-5f);

            RewardTrainCall.Result resident = new RewardTrainCall().apply(context, slice(role, TINY_LLAMA, 0, 2));
            RewardTrainCall.Result fromFolder = new RewardTrainCall().apply(context,
                    new RewardTrainCall.Slice(reloaded, new ModelSource(dir.toString(), 2), 2, 1, OPTIMIZER, HEAD_SEED,
                            PROMPTS, RESPONSES, PAIRS));
            assertEquals(resident.loss(), fromFolder.loss(), 1e-6);
            assertEquals(resident.gradNorm(), fromFolder.gradNorm(), 1e-5 * resident.gradNorm());
            assertEquals(3, fromFolder.version());
            ResidentModel a = PreferencePairsFixture.stored(role, 3, "dp1.tp1.pp1", 0);
            ResidentModel b = PreferencePairsFixture.stored(reloaded, 3, "dp1.tp1.pp1", 0);
            for (String name : PreferencePairsFixture.gradients(a.model()).keySet()) {
                assertArrayEquals(a.tensor(name), b.tensor(name), 1e-6f, name);
            }
        } finally {
            PreferencePairsFixture.release(role);
            PreferencePairsFixture.release(reloaded);
            PreferencePairsFixture.release(frozen);
        }
    }

    private static RewardTrainCall.Slice slice(String role, Path source, long sourceVersion, long version) {
        return new RewardTrainCall.Slice(role, new ModelSource(source.toString(), sourceVersion), version, 1, OPTIMIZER,
                HEAD_SEED, PROMPTS, RESPONSES, PAIRS);
    }

    /** Bradley-Terry of a reward checkpoint's scores of the pairs, one padded batch through LlamaModel.scores. */
    private static BradleyTerry.Result handLoss(Path dir) {
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, dir)) {
            float[] scores = model.scores(ResponseBatch.of(PROMPTS, RESPONSES, model.config().padTokenId()).batch());
            return BradleyTerry.loss(PreferencePairsFixture.even(scores), PreferencePairsFixture.odd(scores), PAIRS);
        }
    }

    private static String losses(List<RewardTrainCall.Result> steps) {
        StringBuilder s = new StringBuilder("losses");
        for (RewardTrainCall.Result r : steps) {
            s.append(' ').append(r.loss()).append(" (accuracy ").append(r.accuracy()).append(')');
        }
        return s.toString();
    }
}
