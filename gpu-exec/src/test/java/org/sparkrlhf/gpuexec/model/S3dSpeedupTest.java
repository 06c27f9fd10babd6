package org.sparkrlhf.gpuexec.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class S3dSpeedupTest {
    @Test
    void formulaAgainstHandComputedValues() {
        // alpha 0.5, k 3: 1 + 0.5 + 0.25 + 0.125 = 1.875
        assertEquals(1.875, S3dSpeedup.expectedTokensPerStep(0.5, 3), 1e-12);
        assertEquals(1.0, S3dSpeedup.expectedTokensPerStep(0.0, 4), 1e-12);
        assertEquals(5.0, S3dSpeedup.expectedTokensPerStep(1.0, 4), 1e-12);
        // alpha 0.8, k 2: 1 + 0.8 + 0.64 = 2.44
        assertEquals(2.44, S3dSpeedup.expectedTokensPerStep(0.8, 2), 1e-12);
        // 8 layers, 4 skipped: the draft runs half the layers
        S3dConfig c = new S3dConfig(2, 6, 3);
        assertEquals(0.5, S3dSpeedup.draftCostFraction(c, 8), 1e-12);
        // 1.875 / (1 * 1.5) = 1.25; with r = 1.25: 1.875 / 1.875 = 1
        assertEquals(1.25, S3dSpeedup.predictedSpeedup(0.5, c, 8, 1.0), 1e-12);
        assertEquals(1.0, S3dSpeedup.predictedSpeedup(0.5, c, 8, 1.25), 1e-12);
        // 32 layers, 8 skipped, alpha 0.8, k 2: 2.44 / (1 + 0.75) = 1.394285714...
        assertEquals(2.44 / 1.75, S3dSpeedup.predictedSpeedup(0.8, new S3dConfig(12, 20, 2), 32, 1.0), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> S3dSpeedup.draftCostFraction(new S3dConfig(2, 9, 1), 8));
        assertThrows(IllegalArgumentException.class, () -> S3dSpeedup.expectedTokensPerStep(1.5, 1));
    }

    @Test
    void statsRatesAgainstHandComputedValues() {
        // 4 sequence steps of k = 3: 12 drafted, 6 accepted, 2 steps rejected a draft
        SpeculativeStats s = new SpeculativeStats(4, 4, 12, 6, 2, 0, 0);
        assertEquals(0.5, s.acceptanceRate(), 1e-12);
        assertEquals(6.0 / 8, s.conditionalAcceptance(), 1e-12);
        assertEquals(2.5, s.tokensPerStep(), 1e-12);
    }

    @Test
    void calibrationRanksCandidatesByPredictedSpeedupFromMeasuredAcceptance() {
        try (CpuBackend backend = new CpuBackend();
             LlamaModel model = LlamaModel.random(backend, ModelConfig.llama(6, 32, 48, 4, 4, 2, 128), DType.F32, 3, 0.4f);
             S3dDraft a = S3dDraft.initial(model, new S3dConfig(1, 3, 2), 1);
             S3dDraft b = S3dDraft.initial(model, new S3dConfig(1, 2, 4), 2);
             S3dDraft c = S3dDraft.initial(model, new S3dConfig(0, 4, 1), 3)) {
            int[][] prompts = {{1, 2, 3}, {4, 5}, {0, 1, 2, 3, 4}};
            List<S3dCalibration.Candidate> ranked = S3dCalibration.rank(model, List.of(a, b, c), prompts, 20, 1.0);
            assertEquals(3, ranked.size());
            for (int i = 0; i < ranked.size(); i++) {
                S3dCalibration.Candidate x = ranked.get(i);
                assertEquals(S3dSpeedup.predictedSpeedup(x.acceptanceRate(), x.config(), 4, 1.0), x.predictedSpeedup(), 1e-12);
                assertTrue(x.acceptanceRate() >= 0 && x.acceptanceRate() <= 1);
                if (i > 0) assertTrue(ranked.get(i - 1).predictedSpeedup() >= x.predictedSpeedup());
            }
        }
    }
}
