package org.sparkrlhf.gpuexec.model;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Picks an S3D draft for a model: measures each candidate's greedy acceptance on a few prompts and
 * ranks the candidates by {@link S3dSpeedup}'s predicted speedup.
 */
public final class S3dCalibration {
    private S3dCalibration() {
    }

    /**
     * A candidate's measurements (acceptanceRate: the conditional acceptance, S3dSpeedup's alpha)
     * and prediction.
     */
    public record Candidate(S3dConfig config, double acceptanceRate, double measuredTokensPerStep,
                            double expectedTokensPerStep, double predictedSpeedup) {
    }

    /**
     * The candidates (drafts with their mask embeddings, trained for their own config), best
     * predicted speedup first; verifyCostRatio as in {@link S3dSpeedup} (1 where decoding reads weights).
     */
    public static List<Candidate> rank(LlamaModel model, List<S3dDraft> drafts, int[][] prompts, int maxNewTokens, double verifyCostRatio) {
        if (drafts.isEmpty()) throw new IllegalArgumentException("no S3D candidates to calibrate");
        int L = model.config().numLayers();
        Generator.Options greedy = Generator.Options.greedy(maxNewTokens, new int[0], 0);
        List<Candidate> out = new ArrayList<>();
        for (S3dDraft d : drafts) {
            SpeculativeStats s = new SpeculativeGenerator(model, d).generate(prompts, greedy).stats();
            double alpha = s.conditionalAcceptance();
            S3dConfig c = d.config();
            out.add(new Candidate(c, alpha, s.tokensPerStep(), S3dSpeedup.expectedTokensPerStep(alpha, c.draftTokens()),
                    S3dSpeedup.predictedSpeedup(alpha, c, L, verifyCostRatio)));
        }
        out.sort(Comparator.comparingDouble(Candidate::predictedSpeedup).reversed());
        return out;
    }
}
