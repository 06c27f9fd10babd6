package org.sparkrlhf.jobs.algorithms;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.jobs.calls.PairFigures;
import org.sparkrlhf.jobs.calls.PreferenceTrainCall;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.ForwardBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RankRows;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.graph.TrainBinding;
import org.sparkrlhf.jobs.graph.TrainLoss;
import org.sparkrlhf.jobs.train.AlgorithmSpec;
import org.sparkrlhf.jobs.train.PreferenceData;
import org.sparkrlhf.jobs.train.SpecialTokens;
import org.sparkrlhf.jobs.train.TrainingData;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * DPO (Rafailov et al. 2023), IPO (Azar et al. 2023), and their group-robust variants GR-DPO and
 * GR-IPO (Ramesh et al. 2024): ref_inf gives the reference's log-probs of each pair's answers, and
 * actor_train takes one AdamW step on the batch's pairs ({@link PreferenceTrainCall}). The robust
 * variants keep a weight per group ({@link GroupWeights}), updated in each step by exponentiated
 * gradient on the groups' losses before the weighted loss's backward; the weights travel with the
 * checkpoint and are logged each iteration as {@code train/group_weight/<group>}.
 */
public final class PreferenceSpec implements AlgorithmSpec {
    private PreferenceData data;
    /** The robust variants' group weights before the next step; null for DPO and IPO. */
    private GroupWeights.State weights;

    @Override
    public int group(RunConfig config) {
        // a pair's two rows never go to different data-parallel ranks
        return 2;
    }

    private static PreferenceLosses.Kind kind(RunConfig config) {
        return switch (config.algorithm()) {
            case DPO, GR_DPO -> PreferenceLosses.Kind.DPO;
            case IPO, GR_IPO -> PreferenceLosses.Kind.IPO;
            default -> throw new IllegalArgumentException("not a preference optimisation: " + config.algorithm().key());
        };
    }

    @Override
    public Map<String, CallBinding> bindings(RunConfig config) {
        RunConfig.PreferenceConfig p = config.preference();
        PreferenceLosses.Kind kind = kind(config);
        boolean robust = config.algorithm().isGroupRobust();
        TrainLoss<PreferenceTrainCall.Slice, PreferenceTrainCall.Result> loss = new TrainLoss<>(kind.name().toLowerCase(),
                (run, call, keys, dp, r, rows) -> {
                    Sequences s = keys.get("packed_input_ids", Sequences.class);
                    float[][] ref = keys.get("packed_ref_logprobs", float[][].class);
                    PreferenceTrainCall.Robust groups = null;
                    if (robust) {
                        int[] pairGroups = keys.get("group_ids", int[].class);
                        groups = new PreferenceTrainCall.Robust(data.groups(), data.groupSizes(), p.groupStepSize(),
                                p.chi(), GroupWeights.Scaling.of(p.groupScaling()), weights,
                                pairsOf(rows, pairGroups));
                    }
                    String role = call.role();
                    return new PreferenceTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                            run.models().model(role).optimizer(), rows.of(s.prompts()),
                            rows.of(s.responses()), rows.of(ref), kind, p.beta(), groups,
                            run.special().pad(), s.size() / 2);
                }, new PreferenceTrainCall());
        return Map.of("ref_inf", new ForwardBinding(ForwardBinding.Output.LOGPROBS),
                "actor_train", new TrainBinding<>(loss));
    }

    /** The groups of the pairs whose rows (chosen and rejected side by side) a rank gets. */
    private static int[] pairsOf(RankRows rows, int[] pairGroups) {
        int[] out = new int[rows.size() / 2];
        for (int k = 0; k < out.length; k++) {
            out[k] = pairGroups[rows.index()[2 * k] / 2];
        }
        return out;
    }

    @Override
    public Map<String, Hook> hooks(RunConfig config) {
        return Map.of();
    }

    @Override
    public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output) {
        data = PreferenceData.read(spark, config, tokenizerDir, special);
        RunConfig.PreferenceConfig p = config.preference();
        weights = config.algorithm().isGroupRobust() ? new GroupWeights(data.groups(), data.groupSizes(),
                p.groupStepSize(), p.chi(), GroupWeights.Scaling.of(p.groupScaling())).state() : null;
        return data;
    }

    @Override
    public boolean writesRollouts() {
        return false;
    }

    @Override
    public Optional<Evaluation> evaluation(RunConfig config, TrainingData training) {
        return data.heldOut().isEmpty() ? Optional.empty()
                : Optional.of(PreferenceEvaluation.policy(data, kind(config), config.preference().beta()));
    }

    @Override
    public Map<String, Double> checkpointGroupWeights() {
        Map<String, Double> out = new LinkedHashMap<>();
        if (weights == null) {
            return out;
        }
        for (int g = 0; g < weights.groups().size(); g++) {
            out.put(weights.groups().get(g), weights.weights().get(g));
        }
        return out;
    }

    @Override
    public void restore(Optional<RunState> state) {
        state.filter(s -> weights != null && !s.groupWeights().isEmpty()).ifPresent(s -> {
            List<Double> w = new ArrayList<>();
            for (String g : weights.groups()) {
                Double v = s.groupWeights().get(g);
                if (v == null) {
                    throw new IllegalArgumentException("the checkpoint's group weights " + s.groupWeights()
                            + " have no group '" + g + "'");
                }
                w.add(v);
            }
            weights = new GroupWeights.State(weights.groups(), w);
        });
    }

    @Override
    public Report report(RunContext run, Keys keys, TrainingData training) {
        @SuppressWarnings("unchecked")
        List<PreferenceTrainCall.Result> results = keys.result("actor_train", List.class);
        PreferenceTrainCall.Result step = results.get(0);
        double[] pairs = PairFigures.overRanks(results);
        Instant now = Instant.now();
        List<MetricRow> figures = new ArrayList<>(List.of(
                new MetricRow("loss/actor", step.loss(), now),
                new MetricRow("grad_norm/actor", step.gradNorm(), now),
                new MetricRow("train/accuracy", pairs[0], now),
                new MetricRow("train/margin", pairs[1], now)));
        StringBuilder line = new StringBuilder(String.format("loss %.4f | acc %.3f | margin %.4f | grad norm %.3f",
                step.loss(), pairs[0], pairs[1], step.gradNorm()));
        if (step.weights() != null) {
            weights = step.weights();
            line.append(" | weights");
            for (int g = 0; g < weights.groups().size(); g++) {
                String name = weights.groups().get(g);
                figures.add(new MetricRow("train/group_weight/" + name, weights.weights().get(g), now));
                if (step.groupPairs()[g] > 0) {
                    figures.add(new MetricRow("train/loss/" + name, step.groupLossSums()[g] / step.groupPairs()[g], now));
                }
                line.append(String.format(" %s %.3f", name, weights.weights().get(g)));
            }
        }
        return new Report(figures, line.toString(), List.of());
    }
}
