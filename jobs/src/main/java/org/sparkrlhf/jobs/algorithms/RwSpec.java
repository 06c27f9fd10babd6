package org.sparkrlhf.jobs.algorithms;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.jobs.calls.PairFigures;
import org.sparkrlhf.jobs.calls.RewardTrainCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
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
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reward modelling on preference pairs: reward_train takes one AdamW step of the Bradley-Terry loss
 * -log sigmoid(s_chosen - s_rejected) ({@link RewardTrainCall}). The model starts from an HF
 * sequence-classification checkpoint, or from a causal LM that gets a fresh score head (seeded by
 * the run's seed); the final model is an HF {@code LlamaForSequenceClassification} folder that PPO
 * and GRPO take as {@code models.reward}.
 */
public final class RwSpec implements AlgorithmSpec {
    private PreferenceData data;

    @Override
    public int group(RunConfig config) {
        return 2;
    }

    @Override
    public String tokenizerRole() {
        return "reward";
    }

    @Override
    public Map<String, CallBinding> bindings(RunConfig config) {
        TrainLoss<RewardTrainCall.Slice, RewardTrainCall.Result> loss = new TrainLoss<>("bradley_terry",
                (run, call, keys, dp, r, rows) -> {
                    Sequences s = keys.get("packed_input_ids", Sequences.class);
                    String role = call.role();
                    return new RewardTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                            run.models().model(role).optimizer(), run.config().seed(),
                            rows.of(s.prompts()), rows.of(s.responses()), s.size() / 2);
                }, new RewardTrainCall());
        return Map.of("reward_train", new TrainBinding<>(loss));
    }

    @Override
    public Map<String, Hook> hooks(RunConfig config) {
        return Map.of();
    }

    @Override
    public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output) {
        data = PreferenceData.read(spark, config, tokenizerDir, special);
        return data;
    }

    @Override
    public boolean writesRollouts() {
        return false;
    }

    @Override
    public Optional<Evaluation> evaluation(RunConfig config, TrainingData training) {
        return data.heldOut().isEmpty() ? Optional.empty() : Optional.of(PreferenceEvaluation.rewardModel(data));
    }

    @Override
    public Report report(RunContext run, Keys keys, TrainingData training) {
        @SuppressWarnings("unchecked")
        List<RewardTrainCall.Result> results = keys.result("reward_train", List.class);
        double[] pairs = PairFigures.overRanks(results);
        RewardTrainCall.Result step = results.get(0);
        Instant now = Instant.now();
        return new Report(List.of(new MetricRow("loss/reward", step.loss(), now),
                new MetricRow("grad_norm/reward", step.gradNorm(), now),
                new MetricRow("train/accuracy", pairs[0], now),
                new MetricRow("train/margin", pairs[1], now)),
                String.format("loss %.4f | acc %.3f | margin %.4f | grad norm %.3f", step.loss(), pairs[0],
                        pairs[1], step.gradNorm()), List.of());
    }
}
