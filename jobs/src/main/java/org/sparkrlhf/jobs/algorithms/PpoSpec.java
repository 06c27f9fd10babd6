package org.sparkrlhf.jobs.algorithms;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tasks.RewardFunctions;
import org.sparkrlhf.jobs.calls.CriticTrainCall;
import org.sparkrlhf.jobs.calls.PpoActorTrainCall;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.ForwardBinding;
import org.sparkrlhf.jobs.graph.GenerateBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Scores;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.graph.TrainBinding;
import org.sparkrlhf.jobs.train.AlgorithmSpec;
import org.sparkrlhf.jobs.train.PromptData;
import org.sparkrlhf.jobs.train.SpecialTokens;
import org.sparkrlhf.jobs.train.TrainingData;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * PPO for language models (Ouyang et al. 2022; Ziegler et al. 2019): one sample per prompt; the
 * {@code ppo_targets} hook turns the reward model's (or function's) score, clipped, and the KL
 * penalty per token (coefficient from the KL controller, fixed or adaptive) into per-token rewards,
 * GAE advantages (whitened when asked) and returns; actor_train takes the clipped surrogate and
 * critic_train the clipped value loss. The controller sees each iteration's mean sequence KL, and a
 * checkpoint keeps its coefficient.
 */
public final class PpoSpec implements AlgorithmSpec {
    private KlController kl;
    private double klUsed;

    @Override
    public int group(RunConfig config) {
        return 1;
    }

    @Override
    public Map<String, CallBinding> bindings(RunConfig config) {
        RunConfig.PpoConfig ppo = config.ppo();
        return Map.of("actor_gen", new GenerateBinding(false),
                "reward_inf", new ForwardBinding(ForwardBinding.Output.SCORES),
                "ref_inf", new ForwardBinding(ForwardBinding.Output.LOGPROBS),
                "critic_inf", new ForwardBinding(ForwardBinding.Output.VALUES),
                "actor_train", new TrainBinding<>(TrainLosses.ppoPolicy(ppo)),
                "critic_train", new TrainBinding<>(TrainLosses.value(ppo, config.seed())));
    }

    @Override
    public Map<String, Hook> hooks(RunConfig config) {
        RunConfig.PpoConfig ppo = config.ppo();
        KlEstimator estimator = KlEstimator.of(ppo.kl().estimator());
        Hook targets = (run, hook, keys) -> {
            klUsed = kl.coef();
            PpoTargets.Result t = PpoTargets.compute(keys.get("rewards", Scores.class).values(),
                    keys.get("packed_logprobs", float[][].class), keys.get("packed_ref_logprobs", float[][].class),
                    keys.get("values", float[][].class), klUsed, estimator, config.reward().clip(), ppo.gamma(),
                    ppo.lambda(), ppo.whitenAdvantages());
            keys.putResult(hook.name(), t);
            keys.put("advantages", t.advantages());
            keys.put("returns", t.returns());
        };
        return config.reward().fromModel() ? Map.of("ppo_targets", targets)
                : Map.of("ppo_targets", targets,
                "reward_fn", new RewardFunctionHook(RewardFunctions.forTask(config.reward().function())));
    }

    @Override
    public RunConfig.OptimizerConfig optimizer(RunConfig config, String role) {
        RunConfig.OptimizerConfig o = config.optimizer();
        return role.equals("critic") ? new RunConfig.OptimizerConfig(config.ppo().criticLr(), o.beta1(), o.beta2(),
                o.eps(), o.weightDecay(), o.gradClip(), o.warmupSteps()) : o;
    }

    @Override
    public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output) {
        RunConfig.KlConfig k = config.ppo().kl();
        kl = new KlController(k.adaptive(), k.coef(), k.target(), k.horizon());
        return PromptData.read(spark, config, tokenizerDir, special, output);
    }

    @Override
    public Optional<Evaluation> evaluation(RunConfig config, TrainingData data) {
        return HeldOutReward.of(config, data);
    }

    @Override
    public double checkpointCoef() {
        return kl.coef();
    }

    @Override
    public void restore(Optional<RunState> state) {
        state.ifPresent(s -> kl.restore(s.klCoef()));
    }

    @Override
    public Report report(RunContext run, Keys keys, TrainingData data) {
        Sequences rows = keys.get("packed_input_ids", Sequences.class);
        Scores scores = keys.get("rewards", Scores.class);
        float[][] values = keys.get("values", float[][].class);
        PpoTargets.Result targets = keys.result("ppo_targets", PpoTargets.Result.class);
        @SuppressWarnings("unchecked")
        List<PpoActorTrainCall.Result> actor = keys.result("actor_train", List.class);
        // a critic given trainable: false has no critic_train call, so no loss, norm or clip figures
        @SuppressWarnings("unchecked")
        List<CriticTrainCall.Result> critic = keys.hasResult("critic_train") ? keys.result("critic_train", List.class)
                : List.of();
        int n = rows.size();
        long actorClipped = 0;
        long actorScored = 0;
        double policyKl = 0;
        for (PpoActorTrainCall.Result t : actor) {
            actorClipped += t.clippedTokens();
            actorScored += t.tokens();
            policyKl += t.approxKlSum();
        }
        long criticClipped = 0;
        long criticScored = 0;
        for (CriticTrainCall.Result t : critic) {
            criticClipped += t.clippedTokens();
            criticScored += t.tokens();
        }
        long tokens = rows.responseTokens();
        double sequenceKlSum = 0;
        double[] perTokenKl = new double[n];
        for (int s = 0; s < n; s++) {
            sequenceKlSum += targets.sequenceKl()[s];
            perTokenKl[s] = targets.sequenceKl()[s] / rows.responses()[s].length;
        }
        kl.update(sequenceKlSum / n, n);
        double rewardMean = SampledPolicySpec.mean(scores.values());
        String estimator = run.config().ppo().kl().estimator();
        double clipFraction = actorScored == 0 ? 0 : (double) actorClipped / actorScored;
        Instant now = Instant.now();
        List<MetricRow> figures = new ArrayList<>(List.of(
                new MetricRow("reward/mean", rewardMean, now),
                new MetricRow("kl/" + estimator, sequenceKlSum / tokens, now),
                new MetricRow("kl/sequence", sequenceKlSum / n, now),
                new MetricRow("kl/coef", klUsed, now),
                new MetricRow("response_length/mean", (double) tokens / n, now),
                new MetricRow("loss/actor", actor.get(0).loss(), now),
                new MetricRow("grad_norm/actor", actor.get(0).gradNorm(), now),
                new MetricRow("clip_fraction/actor", clipFraction, now),
                new MetricRow("kl/policy_update", actorScored == 0 ? 0 : policyKl / actorScored, now),
                new MetricRow("value/mean", meanOf(values, tokens), now),
                new MetricRow("advantage/mean", meanOf(targets.advantages(), tokens), now),
                new MetricRow("return/mean", meanOf(targets.returns(), tokens), now)));
        if (!critic.isEmpty()) {
            figures.add(new MetricRow("loss/critic", critic.get(0).loss(), now));
            figures.add(new MetricRow("grad_norm/critic", critic.get(0).gradNorm(), now));
            figures.add(new MetricRow("clip_fraction/critic", criticScored == 0 ? 0 : (double) criticClipped / criticScored, now));
        }
        if (!run.config().reward().fromModel()) {
            figures.add(new MetricRow("reward/correct_fraction", RolloutRows.correctFraction(scores.details()), now));
        }
        String line = String.format("reward %.3f | kl %.5f | kl coef %.4f | len %.2f | policy loss %.4f | %s"
                        + " | clip %.3f", rewardMean, sequenceKlSum / tokens, klUsed, (double) tokens / n,
                actor.get(0).loss(), critic.isEmpty() ? "critic frozen" : String.format("value loss %.4f", critic.get(0).loss()),
                clipFraction);
        return new Report(figures, line, RolloutRows.of(run, keys, targets.advantages(), values, targets.returns(),
                targets.tokenRewards(), scores.values(), scores.details(), perTokenKl, now));
    }

    private static double meanOf(float[][] perToken, long tokens) {
        double sum = 0;
        for (float[] row : perToken) {
            for (float v : row) {
                sum += v;
            }
        }
        return sum / tokens;
    }
}
