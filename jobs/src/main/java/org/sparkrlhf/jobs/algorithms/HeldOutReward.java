package org.sparkrlhf.jobs.algorithms;

import org.sparkrlhf.datasets.tasks.RewardFunction;
import org.sparkrlhf.datasets.tasks.RewardFunctions;
import org.sparkrlhf.jobs.calls.RewardModelCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.Generation;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Seeds;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.train.AlgorithmSpec;
import org.sparkrlhf.jobs.train.PromptData;
import org.sparkrlhf.jobs.train.PromptSet;
import org.sparkrlhf.jobs.train.TrainingData;

import java.util.Map;
import java.util.Optional;

/**
 * The held-out evaluation of the algorithms that generate: the held-out prompts answered by the
 * current actor on actor_gen's placement, greedily or with {@code data.eval_samples} sampled answers
 * each (with the same seed at every evaluation, {@link Seeds#eval}), and their mean clipped reward
 * ({@code eval/reward_mean}): by the run's reward function; with a reward model, by the task's answer
 * checker when the prompts come from a task ({@code data.task}), so that the curve measures the task
 * and not the reward model's opinion of it, else by the reward model on reward_inf's placement.
 */
public record HeldOutReward(PromptSet prompts, RewardFunction function) implements AlgorithmSpec.Evaluation {
    /** The evaluation of a run that reads {@code data} (prompts), when it holds prompts out. */
    public static Optional<AlgorithmSpec.Evaluation> of(RunConfig config, TrainingData data) {
        PromptSet prompts = ((PromptData) data).prompts();
        return prompts.heldOut().isEmpty() ? Optional.empty()
                : Optional.of(new HeldOutReward(prompts, scoringFunction(config)));
    }

    /** What scores held-out answers: a reward function, or null for the reward model. */
    public static RewardFunction scoringFunction(RunConfig config) {
        if (!config.reward().fromModel()) {
            return RewardFunctions.forTask(config.reward().function());
        }
        return config.data().task() == null ? null : RewardFunctions.forTask(config.data().task());
    }

    @Override
    public Result evaluate(RunContext run, int iteration) {
        RunConfig config = run.config();
        int k = config.data().evalSamples();
        boolean greedy = k == 1;
        Placement genAt = run.placement("actor_gen");
        int[][] heldOut = prompts.heldOutTokens().toArray(new int[0][]);
        Sequences answers = Generation.run(run, "actor", genAt, new Keys(iteration), heldOut, k, greedy,
                Seeds.eval(config.seed()), false, "eval actor_gen iteration " + iteration + " ("
                        + (greedy ? "greedy" : k + " samples per prompt") + ", " + genAt.layout() + ")").sequences();
        int n = answers.size();
        double[] values = new double[n];
        if (function != null) {
            for (int s = 0; s < n; s++) {
                values[s] = function.score(prompts.heldOut().get(s / k), run.tokenizer().decode(answers.responseText(s)))
                        .value();
            }
        } else {
            Placement rewardAt = run.placement("reward_inf");
            float[] scores = RewardModelCall.score(run.runner(), "reward", rewardAt, run.models().source("reward"),
                    answers.prompts(), answers.responses(), k,
                    "eval reward_inf iteration " + iteration + " (" + rewardAt.layout() + ")");
            run.models().holds("reward", rewardAt);
            for (int s = 0; s < n; s++) {
                values[s] = scores[s];
            }
        }
        double clip = config.reward().clip();
        double sum = 0;
        for (double v : values) {
            sum += Math.max(-clip, Math.min(clip, v));
        }
        double mean = sum / n;
        return new Result(Map.of("eval/reward_mean", mean), String.format("eval reward %.3f", mean));
    }
}
