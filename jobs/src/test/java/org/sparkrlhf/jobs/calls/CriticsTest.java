package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

class CriticsTest {
    static final Path FIXTURES = Path.of("../gpu-exec/src/test/resources/fixtures").toAbsolutePath().normalize();

    @Test
    void criticFromACausalLmKeepsTheDecoderAndDrawsTheSameFreshHeadForASeed() {
        try (CpuBackend backend = new CpuBackend();
             LlamaModel actor = LlamaModel.load(backend, FIXTURES.resolve("tiny-llama"));
             LlamaModel a = Critics.load(backend, FIXTURES.resolve("tiny-llama"), 7);
             LlamaModel b = Critics.load(backend, FIXTURES.resolve("tiny-llama"), 7);
             LlamaModel c = Critics.load(backend, FIXTURES.resolve("tiny-llama"), 8)) {
            assertEquals(ModelConfig.Head.SCORE, a.config().head());
            assertEquals("LlamaForSequenceClassification", a.config().architecture());
            for (LlamaWeights.Spec s : a.parameters().specs()) {
                float[] mine = backend.download(a.parameters().get(s.name()));
                if (s.name().equals("score.weight")) {
                    assertArrayEquals(mine, backend.download(b.parameters().get(s.name())), "same seed, same head");
                    assertFalse(java.util.Arrays.equals(mine, backend.download(c.parameters().get(s.name()))));
                    double squares = 0;
                    for (float v : mine) {
                        squares += v * v;
                    }
                    // N(0, 1 / (hidden + 1)): the sample std of 64 draws is within a factor 2 of 1/65
                    double std = Math.sqrt(squares / mine.length);
                    assertEquals(1.0 / 65, std, 0.5 / 65);
                } else {
                    assertArrayEquals(backend.download(actor.parameters().get(s.name())), mine, s.name());
                }
            }
            int[] seq = {1, 17, 40, 5, 2};
            float[] values = a.values(Batch.rightPadded(new int[][]{seq}, 0));
            assertEquals(seq.length, values.length);
            assertNotEquals(values[0], values[4]);
        }
    }

    @Test
    void criticFromARewardModelIsTheRewardModel() {
        Path dir = FIXTURES.resolve("tiny-llama-reward");
        try (CpuBackend backend = new CpuBackend();
             LlamaModel reward = LlamaModel.load(backend, dir);
             LlamaModel critic = Critics.load(backend, dir, 7)) {
            Batch batch = Batch.rightPadded(new int[][]{{1, 17, 40, 5, 2}, {1, 9, 3}}, 0);
            assertArrayEquals(reward.values(batch), critic.values(batch));
        }
    }

    @Test
    void responseValuesSitWhereTheTokenIsPredicted() {
        // row 0: prompt of 2, response of 3 (T = 5); row 1: prompt of 3, response of 1
        ResponseBatch batch = ResponseBatch.of(new int[][]{{1, 5}, {1, 6, 7}}, new int[][]{{8, 9, 2}, {2}}, 0);
        float[] perPosition = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14};
        assertArrayEquals(new float[]{1, 2, 3}, ValuePositions.response(batch, perPosition, 0));
        assertArrayEquals(new float[]{12}, ValuePositions.response(batch, perPosition, 1));
        assertArrayEquals(new int[]{0, 1, 1, 1, 0, 0, 0, 1, 0, 0}, ValuePositions.mask(batch));
        assertArrayEquals(new float[]{0, 7, 8, 9, 0, 0, 0, 6, 0, 0},
                ValuePositions.spread(batch, new float[][]{{7, 8, 9}, {6}}));
    }
}
