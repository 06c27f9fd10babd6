package org.sparkrlhf.jobs.algorithms;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tasks.RewardFunctions;
import org.sparkrlhf.jobs.calls.GrpoTrainCall;
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
import java.util.HashMap;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The sampled policy-gradient algorithms, which differ only in their advantage hook (their graphs are
 * the planner's, {@code Algorithms.of}): rewards are clipped to [-reward.clip, reward.clip], and the
 * loss is the clipped surrogate on each sample's advantage with the k3 KL to the reference
 * ({@code kl_coef}), {@code epochs} x {@code mini_batches} steps.
 * <ul>
 *   <li>GRPO (Shao et al. 2024): {@code group_size} samples per prompt, advantages normalised within
 *   the prompt's group ({@code group_advantages});</li>
 *   <li>RLOO (Ahmadian et al. 2024): {@code group_size} samples per prompt, each one's baseline the
 *   mean reward of the other samples of its prompt ({@code leave_one_out_advantages});</li>
 *   <li>ReMax (Li et al. 2023): one sample and one greedy answer per prompt ({@code actor_greedy_gen}),
 *   the greedy answer's reward the baseline ({@code greedy_baseline_advantages}). With one epoch and
 *   one mini-batch the surrogate's gradient is REINFORCE's, as in the paper.</li>
 * </ul>
 */
public final class SampledPolicySpec implements AlgorithmSpec {
    @Override
    public int group(RunConfig config) {
        return config.grpo().groupSize();
    }

    @Override
    public Map<String, CallBinding> bindings(RunConfig config) {
        RunConfig.GrpoConfig g = config.grpo();
        return Map.of("actor_gen", new GenerateBinding(false),
                "actor_greedy_gen", new GenerateBinding(true),
                "reward_inf", new ForwardBinding(ForwardBinding.Output.SCORES),
                "reward_greedy_inf", new ForwardBinding(ForwardBinding.Output.SCORES),
                "ref_inf", new ForwardBinding(ForwardBinding.Output.LOGPROBS),
                "actor_train", new TrainBinding<>(TrainLosses.grpo(g.clipRatio(), g.klCoef(), g.epochs(), g.miniBatches())));
    }

    @Override
    public Map<String, Hook> hooks(RunConfig config) {
        double clip = config.reward().clip();
        Map<String, Hook> hooks = new HashMap<>(Map.of(
                "group_advantages", (run, hook, keys) -> keys.put("advantages",
                        Advantages.groupNormalised(keys.get("rewards", Scores.class).clipped(clip), run.group())),
                "leave_one_out_advantages", (run, hook, keys) -> keys.put("advantages",
                        Advantages.rloo(keys.get("rewards", Scores.class).clipped(clip), run.group())),
                "greedy_baseline_advantages", (run, hook, keys) -> keys.put("advantages",
                        Advantages.remax(keys.get("rewards", Scores.class).clipped(clip),
                                keys.get("greedy_rewards", Scores.class).clipped(clip), 1))));
        if (!config.reward().fromModel()) {
            RewardFunctionHook function = new RewardFunctionHook(RewardFunctions.forTask(config.reward().function()));
            hooks.put("reward_fn", function);
            hooks.put("greedy_reward_fn", function);
        }
        return hooks;
    }

    @Override
    public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output) {
        return PromptData.read(spark, config, tokenizerDir, special, output);
    }

    @Override
    public Optional<Evaluation> evaluation(RunConfig config, TrainingData data) {
        return HeldOutReward.of(config, data);
    }

    @Override
    public Report report(RunContext run, Keys keys, TrainingData data) {
        Sequences rows = keys.get("packed_input_ids", Sequences.class);
        float[][] logprobs = keys.get("packed_logprobs", float[][].class);
        float[][] ref = keys.get("packed_ref_logprobs", float[][].class);
        Scores scores = keys.get("rewards", Scores.class);
        float[] rewards = scores.clipped(run.config().reward().clip());
        float[] advantages = keys.get("advantages", float[].class);
        int n = rows.size();
        double[] kl = new double[n];
        double klSum = 0;
        long tokens = 0;
        float[][] perToken = new float[n][];
        for (int s = 0; s < n; s++) {
            double sum = 0;
            for (int t = 0; t < rows.responses()[s].length; t++) {
                sum += KlEstimator.K3.value(logprobs[s][t], ref[s][t]);
            }
            kl[s] = sum / rows.responses()[s].length;
            klSum += sum;
            tokens += rows.responses()[s].length;
            perToken[s] = new float[rows.responses()[s].length];
            Arrays.fill(perToken[s], advantages[s]);
        }
        @SuppressWarnings("unchecked")
        List<GrpoTrainCall.Result> trained = keys.result("actor_train", List.class);
        long clipped = 0;
        long scored = 0;
        for (GrpoTrainCall.Result t : trained) {
            clipped += t.clippedTokens();
            scored += t.tokens();
        }
        GrpoTrainCall.Result step = trained.get(0);
        double rewardMean = mean(rewards);
        Instant now = Instant.now();
        List<MetricRow> figures = new ArrayList<>(List.of(
                new MetricRow("reward/mean", rewardMean, now),
                new MetricRow("kl/k3", klSum / tokens, now),
                new MetricRow("response_length/mean", (double) tokens / n, now),
                new MetricRow("loss/actor", step.loss(), now),
                new MetricRow("grad_norm/actor", step.gradNorm(), now),
                new MetricRow("clip_fraction/actor", scored == 0 ? 0 : (double) clipped / scored, now)));
        StringBuilder line = new StringBuilder(String.format("reward %.3f", rewardMean));
        if (!run.config().reward().fromModel()) {
            double correct = RolloutRows.correctFraction(scores.details());
            figures.add(new MetricRow("reward/correct_fraction", correct, now));
            line.append(String.format(" | correct %.3f", correct));
        }
        line.append(String.format(" | kl %.5f | len %.2f | loss %.4f | grad norm %.3f", klSum / tokens,
                (double) tokens / n, step.loss(), step.gradNorm()));
        return new Report(figures, line.toString(), RolloutRows.of(run, keys, perToken, null, null, null, rewards,
                scores.details(), kl, now));
    }

    static double mean(float[] x) {
        double sum = 0;
        for (float v : x) {
            sum += v;
        }
        return sum / x.length;
    }
}
