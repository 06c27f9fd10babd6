package org.sparkrlhf.planner.bench;

import java.util.List;

/**
 * Throughput ReaL published for its PPO setups (prompt 128 tokens, 2^17 tokens a batch, 4 PPO
 * mini-batches, LLaMA-2 7B / 13B, CodeLLaMA-34B, LLaMA-2 70B, nodes of 8 x 80 GB H100), read off the
 * figure in the ReaLHF repository (openpsi-project/ReaLHF, docs/source/images/vws.svg, the throughput
 * comparison of the README and of the paper, 2024-06): bar heights converted with each panel's y axis.
 * Values are PFLOP/s counted with {@link org.sparkrlhf.planner.cost.FlopCounter}'s convention;
 * "heuristic" is ReaL running the heuristic plan (TP 8 in a node, PP = nodes, DP 1), "real" its searched
 * plan. GPU counts: 8/16/32/64 for the model sizes 7/13/34/70B (scale actor, scale critic), twice that
 * for scale both.
 */
public final class PublishedReal {
    private PublishedReal() {
    }

    /** One published point: scenario ("actor", "critic", "both"), size of the scaled models, GPUs, generation length. */
    public record Point(String scenario, String scaledModel, int gpus, int genLen, double heuristicPflops,
                        double realPflops) {
    }

    private static final String[] MODELS = {"llama2-7b", "llama2-13b", "codellama-34b", "llama2-70b"};

    private static void add(List<Point> out, String scenario, int genLen, double[] heuristic, double[] real) {
        int[] gpus = scenario.equals("both") ? new int[]{16, 32, 64, 128} : new int[]{8, 16, 32, 64};
        for (int i = 0; i < 4; i++) {
            out.add(new Point(scenario, MODELS[i], gpus[i], genLen, heuristic[i], real[i]));
        }
    }

    public static List<Point> points() {
        List<Point> p = new java.util.ArrayList<>();
        add(p, "actor", 128, new double[]{0.684, 1.041, 2.143, 3.075}, new double[]{0.917, 1.292, 2.501, 3.229});
        add(p, "actor", 384, new double[]{0.511, 0.741, 1.451, 1.885}, new double[]{0.772, 1.010, 1.571, 2.049});
        add(p, "actor", 896, new double[]{0.347, 0.465, 0.876, 1.056}, new double[]{0.589, 0.726, 0.958, 1.100});
        add(p, "critic", 128, new double[]{0.684, 1.101, 2.374, 4.070}, new double[]{0.917, 1.505, 2.729, 4.517});
        add(p, "critic", 384, new double[]{0.511, 0.833, 1.750, 2.711}, new double[]{0.772, 1.282, 2.493, 3.578});
        add(p, "critic", 896, new double[]{0.347, 0.559, 1.093, 1.752}, new double[]{0.589, 0.936, 1.711, 3.140});
        add(p, "both", 128, new double[]{0.892, 1.523, 3.692, 5.196}, new double[]{1.466, 1.743, 4.222, 6.454});
        add(p, "both", 384, new double[]{0.612, 1.080, 2.085, 3.151}, new double[]{0.930, 1.521, 2.563, 3.456});
        add(p, "both", 896, new double[]{0.378, 0.622, 1.405, 1.740}, new double[]{0.642, 0.983, 1.627, 2.112});
        return List.copyOf(p);
    }
}
