package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.datasets.tables.FinishReason;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.datasets.tasks.Reward;
import org.sparkrlhf.datasets.tasks.RewardFunction;
import org.sparkrlhf.datasets.tasks.RewardFunctions;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.algorithms.KlController;
import org.sparkrlhf.jobs.algorithms.KlEstimator;
import org.sparkrlhf.jobs.algorithms.PpoTargets;
import org.sparkrlhf.jobs.calls.CriticTrainCall;
import org.sparkrlhf.jobs.calls.GenerateCall;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.PpoActorTrainCall;
import org.sparkrlhf.jobs.calls.RefLogprobsCall;
import org.sparkrlhf.jobs.calls.ReleaseModelsCall;
import org.sparkrlhf.jobs.calls.RewardModelCall;
import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.calls.ValuesCall;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.Algorithm;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * PPO for language models (Ouyang et al. 2022; the loop of Ziegler et al. 2019) as a Spark job.
 * Each iteration, on the next {@code data.batch_size} prompts in the run's data order:
 * <ol>
 *   <li>actor_gen: one sampled response per prompt (seeded by the run's seed and the iteration),
 *       with its logprobs under the generating policy;</li>
 *   <li>reward_inf: each response's score from the reward model ({@code models.reward}), or from
 *       the reward function on the driver ({@code reward.function});</li>
 *   <li>ref_inf: the responses' logprobs under the frozen initial actor;</li>
 *   <li>critic_inf: the critic's value at each response token;</li>
 *   <li>on the driver: per-token rewards (-kl_coef times the KL estimate on every token, the
 *       score clipped to [-reward.clip, reward.clip] on the last), GAE advantages and returns,
 *       advantages whitened over the batch ({@link PpoTargets});</li>
 *   <li>actor_train: the clipped surrogate, and critic_train: the clipped value loss, each
 *       {@code ppo.epochs} x {@code ppo.mini_batches} AdamW steps;</li>
 *   <li>the adaptive KL controller (if any) sees the batch's mean sequence KL; the iteration's
 *       rollouts and metrics are appended (idempotently) to the run's Delta tables, and one
 *       progress line is printed.</li>
 * </ol>
 * Every call is a barrier stage with one data-parallel rank per device of the GRPO placement
 * ({@link GrpoTraining#mesh}). Every {@code data.eval_every} iterations (and after the last), when
 * {@code data.eval_size > 0}, the held-out prompts are answered greedily and scored as the
 * training responses are ({@code eval/reward_mean}). Every {@code checkpoint.every} iterations a
 * checkpoint ({@link RunCheckpoints}) holds the actor and the critic with their optimizer states,
 * the data position and the KL coefficient; {@code --resume} continues from the newest complete
 * one. At the end the actor goes to {@code <output>/final} and the critic to
 * {@code <output>/final-critic}, and the run's replicas leave the executors' model stores.
 */
public final class PpoTraining {
    private static final String ACTOR = "actor";
    private static final String REF = "ref";
    private static final String CRITIC = "critic";
    private static final String REWARD = "reward";

    /** Per-iteration mean rewards, held-out evaluations (iteration -> mean reward), and the final models. */
    public record Summary(List<Double> rewards, Map<Integer, Double> evaluations, Path finalModel, Path finalCritic) {
    }

    /**
     * The frozen models' sources and the shared settings every call of the run needs (the trained
     * models' sources change with each checkpoint).
     */
    private record Run(RunConfig config, List<DeviceSlot> mesh, int dp, ModelSource ref, ModelSource reward,
                       RewardFunction rewardFunction,
                       RunConfig.OptimizerConfig criticOptimizer, long headSeed, SftTraining.SpecialTokens special) {
    }

    private PpoTraining() {
    }

    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress) {
        return run(spark, config, runner, inventory, progress, false);
    }

    /**
     * Runs PPO; with {@code resume}, from the newest complete checkpoint under the run's output (the
     * actor's and the critic's weights and optimizer states, the data position, the sampling counter
     * and the KL coefficient), or from the start when there is none. The summary holds the
     * iterations run here.
     */
    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress, boolean resume) {
        if (config.algorithm() != Algorithm.PPO) {
            throw new IllegalArgumentException("not a PPO run: " + config.algorithm().key());
        }
        RunConfig.PpoConfig ppo = config.ppo();
        Path output = SftTraining.localOutput(config);
        Path actorDir = new ModelSource(config.models().get(ACTOR).path(), 0).localPath();
        Path criticDir = new ModelSource(config.models().get(CRITIC).path(), 0).localPath();
        List<DeviceSlot> mesh = GrpoTraining.mesh(config, inventory);
        int dp = mesh.size();
        if (config.data().batchSize() < dp) {
            throw new IllegalArgumentException(config.source() + ": data.batch_size " + config.data().batchSize()
                    + " is smaller than the " + dp + " data-parallel ranks");
        }
        RunConfig.OptimizerConfig o = config.optimizer();
        Run run = new Run(config, mesh, dp, new ModelSource(config.models().get(REF).path(), 0),
                config.reward().fromModel() ? new ModelSource(config.models().get(REWARD).path(), 0) : null,
                config.reward().fromModel() ? null : RewardFunctions.forTask(config.reward().function()),
                new RunConfig.OptimizerConfig(ppo.criticLr(), o.beta1(), o.beta2(), o.eps(), o.weightDecay(),
                        o.gradClip(), o.warmupSteps()),
                config.seed(), SftTraining.SpecialTokens.read(actorDir));
        SftTraining.SpecialTokens special = run.special();
        PromptSet prompts = PromptSet.read(spark, config, actorDir, special.bos(), output);
        KlController klController = new KlController(ppo.kl().adaptive(), ppo.kl().coef(), ppo.kl().target(),
                ppo.kl().horizon());
        KlEstimator estimator = KlEstimator.of(ppo.kl().estimator());
        progress.printf("ppo: %d prompts (%d held out), rewards from %s, critic from %s, calls on %d device(s) (dp=%d), "
                        + "%d iterations%n", prompts.rows().size(), prompts.heldOut().size(),
                config.reward().fromModel() ? "the reward model " + run.reward().path()
                        : "the reward function " + config.reward().function(),
                criticDir, dp, dp, config.iterations());

        RunCheckpoints checkpoints = new RunCheckpoints(output.toUri().toString(), new Configuration());
        int dataSize = prompts.rows().size();
        Optional<RunCheckpoints.Checkpoint> resumed = checkpoints.resume(config, dataSize, resume, progress);
        DataOrder order = DataOrder.startingAt(dataSize, config.seed(), resumed);
        // after a checkpoint, where a lost executor reloads the trained models from (weights and optimizer states)
        ModelSource actorSource = resumed.map(c -> c.source(ACTOR)).orElseGet(() -> new ModelSource(actorDir.toString(), 0));
        ModelSource criticSource = resumed.map(c -> c.source(CRITIC))
                .orElseGet(() -> new ModelSource(criticDir.toString(), 0));
        // the adaptive controller's coefficient continues where the checkpoint left it
        klController.restore(resumed.map(c -> c.state().klCoef()).orElse(ppo.kl().coef()));
        int first = resumed.map(c -> c.state().iteration() + 1).orElse(1);
        GrpoTraining.checkSamplingCounter(resumed);
        String layout = "dp" + dp + ".tp1.pp1";
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, SftTraining.metricsPath(output));
        IterationTable<RolloutRow> rollouts = IterationTable.rollouts(spark, GrpoTraining.rolloutsPath(output));
        List<Double> rewards = new ArrayList<>();
        Map<Integer, Double> evaluations = new LinkedHashMap<>();
        long actorVersion = actorSource.version();
        long criticVersion = criticSource.version();
        try (HfTokenizer tokenizer = HfTokenizer.open(actorDir)) {
            if (first == 1 && !prompts.heldOut().isEmpty()) {
                // the curve's starting point: the initial actor on the held-out prompts, logged as iteration 0
                long start = System.nanoTime();
                double heldOut = evaluate(runner, run, prompts, actorSource, actorVersion, tokenizer, 0);
                evaluations.put(0, heldOut);
                Instant now = Instant.now();
                metrics.appendIteration(config.name(), 0, List.of(new MetricRow("eval/reward_mean", heldOut, now),
                        new MetricRow("seconds/eval", (System.nanoTime() - start) / 1e9, now)));
                progress.printf("iter 0/%d | eval reward %.3f (before training)%n", config.iterations(), heldOut);
            }
            for (int iteration = first; iteration <= config.iterations(); iteration++) {
                List<Integer> picked = order.next(config.data().batchSize());
                int n = picked.size();
                int[][] batchPrompts = new int[n][];
                List<PromptRow> promptRows = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    batchPrompts[i] = prompts.tokens().get(picked.get(i));
                    promptRows.add(prompts.rows().get(picked.get(i)));
                }
                Map<String, Double> seconds = new LinkedHashMap<>();
                String tag = " iteration " + iteration + " (ppo, dp=" + dp + ")";

                // actor_gen
                long start = System.nanoTime();
                GenerateCall.Result[] generated = generate(runner, run, batchPrompts, actorSource, actorVersion,
                        GrpoTraining.sampleSeed(config.seed(), iteration), false, "actor_gen" + tag);
                seconds.put("actor_gen", (System.nanoTime() - start) / 1e9);
                int[][] responses = new int[n][];
                boolean[] stopped = new boolean[n];
                float[][] logprobs = new float[n][];
                int k = 0;
                for (GenerateCall.Result g : generated) {
                    for (int j = 0; j < g.responses().length; j++, k++) {
                        responses[k] = g.responses()[j];
                        stopped[k] = g.stoppedAtEos()[j];
                        logprobs[k] = g.logprobs()[j];
                    }
                }
                String[] texts = new String[n];
                for (int s = 0; s < n; s++) {
                    texts[s] = tokenizer.decode(withoutEos(responses[s], stopped[s]));
                }

                // reward_inf (the reward model), or the reward function on the driver
                start = System.nanoTime();
                Scores scores = score(runner, run, promptRows, batchPrompts, responses, texts, "reward_inf" + tag);
                seconds.put(config.reward().fromModel() ? "reward_inf" : "reward", (System.nanoTime() - start) / 1e9);

                // ref_inf
                List<RefLogprobsCall.Slice> refSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * n / dp;
                    int to = (r + 1) * n / dp;
                    refSlices.add(new RefLogprobsCall.Slice(REF, run.ref(), dp, Arrays.copyOfRange(batchPrompts, from, to),
                            Arrays.copyOfRange(responses, from, to), special.pad()));
                }
                start = System.nanoTime();
                float[][] refLogprobs = concat(runner.run("ref_inf", "ref_inf" + tag, mesh, refSlices,
                        new RefLogprobsCall()), n);
                seconds.put("ref_inf", (System.nanoTime() - start) / 1e9);

                // critic_inf
                List<ValuesCall.Slice> valueSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * n / dp;
                    int to = (r + 1) * n / dp;
                    valueSlices.add(new ValuesCall.Slice(CRITIC, criticSource, criticVersion, dp, run.criticOptimizer(),
                            run.headSeed(), Arrays.copyOfRange(batchPrompts, from, to),
                            Arrays.copyOfRange(responses, from, to), special.pad()));
                }
                start = System.nanoTime();
                float[][] values = concat(runner.run("critic_inf", "critic_inf" + tag, mesh, valueSlices,
                        new ValuesCall()), n);
                seconds.put("critic_inf", (System.nanoTime() - start) / 1e9);

                // rewards per token, advantages and returns, on the driver
                double klCoef = klController.coef();
                PpoTargets.Result targets = PpoTargets.compute(scores.values(), logprobs, refLogprobs, values, klCoef,
                        estimator, config.reward().clip(), ppo.gamma(), ppo.lambda(), ppo.whitenAdvantages());

                // actor_train and critic_train, over the same mini-batches
                int miniBatches = ppo.miniBatches();
                int[] miniBatchTokens = new int[miniBatches];
                for (int r = 0; r < dp; r++) {
                    int from = r * n / dp;
                    int rows = (r + 1) * n / dp - from;
                    for (int m = 0; m < miniBatches; m++) {
                        for (int s = from + m * rows / miniBatches; s < from + (m + 1) * rows / miniBatches; s++) {
                            miniBatchTokens[m] += responses[s].length;
                        }
                    }
                }
                List<PpoActorTrainCall.Slice> actorSlices = new ArrayList<>(dp);
                List<CriticTrainCall.Slice> criticSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * n / dp;
                    int to = (r + 1) * n / dp;
                    int[][] p = Arrays.copyOfRange(batchPrompts, from, to);
                    int[][] resp = Arrays.copyOfRange(responses, from, to);
                    actorSlices.add(new PpoActorTrainCall.Slice(ACTOR, actorSource, actorVersion, dp, config.optimizer(),
                            p, resp, Arrays.copyOfRange(logprobs, from, to),
                            Arrays.copyOfRange(targets.advantages(), from, to), ppo.clipRatio(), ppo.epochs(),
                            miniBatchTokens, special.pad()));
                    criticSlices.add(new CriticTrainCall.Slice(CRITIC, criticSource, criticVersion, dp,
                            run.criticOptimizer(), run.headSeed(), p, resp, Arrays.copyOfRange(values, from, to),
                            Arrays.copyOfRange(targets.returns(), from, to), ppo.valueClip(), ppo.valueCoef(),
                            ppo.epochs(), miniBatchTokens, special.pad()));
                }
                start = System.nanoTime();
                List<RankResult<PpoActorTrainCall.Result>> actorTrained = runner.run("actor_train", "actor_train" + tag,
                        mesh, actorSlices, new PpoActorTrainCall());
                seconds.put("actor_train", (System.nanoTime() - start) / 1e9);
                start = System.nanoTime();
                List<RankResult<CriticTrainCall.Result>> criticTrained = runner.run("critic_train", "critic_train" + tag,
                        mesh, criticSlices, new CriticTrainCall());
                seconds.put("critic_train", (System.nanoTime() - start) / 1e9);
                PpoActorTrainCall.Result actorStep = actorTrained.get(0).value();
                CriticTrainCall.Result criticStep = criticTrained.get(0).value();
                long actorClipped = 0;
                long actorScored = 0;
                double policyKl = 0;
                for (RankResult<PpoActorTrainCall.Result> t : actorTrained) {
                    actorClipped += t.value().clippedTokens();
                    actorScored += t.value().tokens();
                    policyKl += t.value().approxKlSum();
                }
                long criticClipped = 0;
                long criticScored = 0;
                for (RankResult<CriticTrainCall.Result> t : criticTrained) {
                    criticClipped += t.value().clippedTokens();
                    criticScored += t.value().tokens();
                }
                long policyVersion = actorVersion;
                actorVersion = actorStep.version();
                criticVersion = criticStep.version();

                // the KL controller, the tables and the progress line
                long responseTokens = 0;
                long promptTokens = 0;
                double sequenceKlSum = 0;
                double rewardSum = 0;
                int correct = 0;
                Instant now = Instant.now();
                List<RolloutRow> rows = new ArrayList<>(n);
                for (int s = 0; s < n; s++) {
                    PromptRow prompt = promptRows.get(s);
                    int length = responses[s].length;
                    rows.add(new RolloutRow(prompt.id(), prompt.group(), prompt.prompt(), texts[s], batchPrompts[s],
                            responses[s], logprobs[s], refLogprobs[s], values[s], targets.advantages()[s],
                            targets.returns()[s], targets.tokenRewards()[s], scores.values()[s], scores.details()[s],
                            targets.sequenceKl()[s] / length, stopped[s] ? FinishReason.STOP : FinishReason.LENGTH,
                            policyVersion, now));
                    responseTokens += length;
                    promptTokens += batchPrompts[s].length;
                    sequenceKlSum += targets.sequenceKl()[s];
                    rewardSum += scores.values()[s];
                    if (Reward.CORRECT.equals(scores.details()[s])) {
                        correct++;
                    }
                }
                klController.update(sequenceKlSum / n, n);
                double rewardMean = rewardSum / n;
                double kl = sequenceKlSum / responseTokens;
                double length = (double) responseTokens / n;
                double callSeconds = seconds.values().stream().mapToDouble(Double::doubleValue).sum();
                double tokensPerSecond = (promptTokens + responseTokens) / callSeconds;
                rewards.add(rewardMean);
                rollouts.appendIteration(config.name(), iteration, rows);
                List<MetricRow> figures = new ArrayList<>(List.of(
                        new MetricRow("reward/mean", rewardMean, now),
                        new MetricRow("kl/ref", kl, now),
                        new MetricRow("kl/sequence", sequenceKlSum / n, now),
                        new MetricRow("kl/coef", klCoef, now),
                        new MetricRow("response_length/mean", length, now),
                        new MetricRow("loss/actor", actorStep.loss(), now),
                        new MetricRow("loss/critic", criticStep.loss(), now),
                        new MetricRow("grad_norm/actor", actorStep.gradNorm(), now),
                        new MetricRow("grad_norm/critic", criticStep.gradNorm(), now),
                        new MetricRow("clip_fraction/actor", actorScored == 0 ? 0 : (double) actorClipped / actorScored, now),
                        new MetricRow("clip_fraction/critic", criticScored == 0 ? 0 : (double) criticClipped / criticScored,
                                now),
                        new MetricRow("kl/policy_update", actorScored == 0 ? 0 : policyKl / actorScored, now),
                        new MetricRow("value/mean", meanOf(values, responseTokens), now),
                        new MetricRow("advantage/mean", meanOf(targets.advantages(), responseTokens), now),
                        new MetricRow("return/mean", meanOf(targets.returns(), responseTokens), now),
                        new MetricRow("tokens_per_second", tokensPerSecond, now)));
                if (!config.reward().fromModel()) {
                    figures.add(new MetricRow("reward/correct_fraction", (double) correct / n, now));
                }
                for (Map.Entry<String, Double> e : seconds.entrySet()) {
                    figures.add(new MetricRow("seconds/" + e.getKey(), e.getValue(), now));
                }
                figures.add(new MetricRow("tokens_per_second/actor_gen", responseTokens / seconds.get("actor_gen"), now));
                StringBuilder line = new StringBuilder(String.format(
                        "iter %d/%d | reward %.3f | kl %.5f | kl coef %.4f | len %.2f | policy loss %.4f | value loss %.4f"
                                + " | clip %.3f",
                        iteration, config.iterations(), rewardMean, kl, klCoef, length, actorStep.loss(),
                        criticStep.loss(), actorScored == 0 ? 0 : (double) actorClipped / actorScored));
                for (Map.Entry<String, Double> e : seconds.entrySet()) {
                    line.append(String.format(" | %s %.2f s", e.getKey(), e.getValue()));
                }
                line.append(String.format(" | %.0f tokens/s", tokensPerSecond));
                int evalEvery = config.data().evalEvery();
                if (!prompts.heldOut().isEmpty() && (iteration % evalEvery == 0 || iteration == config.iterations())) {
                    start = System.nanoTime();
                    double heldOut = evaluate(runner, run, prompts, actorSource, actorVersion, tokenizer, iteration);
                    evaluations.put(iteration, heldOut);
                    figures.add(new MetricRow("eval/reward_mean", heldOut, now));
                    figures.add(new MetricRow("seconds/eval", (System.nanoTime() - start) / 1e9, now));
                    line.append(String.format(" | eval reward %.3f", heldOut));
                }
                metrics.appendIteration(config.name(), iteration, figures);
                progress.println(line);

                int every = config.checkpoint().every();
                if (every > 0 && iteration % every == 0 && iteration < config.iterations()) {
                    // the sampling counter is the iteration (sampleSeed); the coefficient is the next iteration's
                    RunState state = new RunState(config.name(), iteration, config.seed(), dataSize, order.epoch(),
                            order.offset(), iteration, klController.coef(),
                            Map.of(ACTOR, actorVersion, CRITIC, criticVersion));
                    RunCheckpoints.Checkpoint saved = checkpoints.save(runner, state, List.of(
                                    new RunCheckpoints.TrainedModel(ACTOR, actorVersion, layout, mesh, actorDir),
                                    new RunCheckpoints.TrainedModel(CRITIC, criticVersion, layout, mesh, criticDir)),
                            config.checkpoint().keep());
                    actorSource = saved.source(ACTOR);
                    criticSource = saved.source(CRITIC);
                    progress.printf("checkpoint %s%n", saved.localDir());
                }
            }
        }
        Path finalDir = SftTraining.writeFinal(runner, mesh, layout, actorVersion, actorDir, output);
        Path finalCritic = writeFinalCritic(runner, mesh, layout, criticVersion, criticDir, output);
        progress.printf("final model %s, critic %s%n", finalDir, finalCritic);
        List<ReleaseModelsCall.Request> release = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            release.add(new ReleaseModelsCall.Request(List.of(ACTOR, CRITIC, REF, REWARD),
                    List.of(actorVersion, criticVersion, 0L, 0L), layout));
        }
        runner.run("release", "release the run's models", mesh, release, new ReleaseModelsCall());
        return new Summary(rewards, evaluations, finalDir, finalCritic);
    }

    /** Sequence scores (unclipped: the clip is applied where they become rewards) and the reward function's verdicts. */
    private record Scores(float[] values, String[] details) {
    }

    /** actor_gen over the data-parallel ranks: one response per prompt, sampled, or greedy without logprobs. */
    private static GenerateCall.Result[] generate(BarrierCallRunner runner, Run run, int[][] prompts,
                                                  ModelSource actor, long version, long seed, boolean greedy, String description) {
        int dp = run.dp();
        int n = prompts.length;
        RunConfig.GenerationConfig g = run.config().generation();
        List<GenerateCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = r * n / dp;
            int to = (r + 1) * n / dp;
            slices.add(new GenerateCall.Slice(ACTOR, actor, version, dp, run.config().optimizer(),
                    Arrays.copyOfRange(prompts, from, to), from, 1, g.maxNewTokens(),
                    greedy ? 0f : (float) g.temperature(), greedy ? 0 : g.topK(), greedy ? 1f : (float) g.topP(),
                    greedy ? 0 : seed, new int[]{run.special().eos()}, run.special().pad(), !greedy));
        }
        List<RankResult<GenerateCall.Result>> results = runner.run("actor_gen", description, run.mesh(), slices,
                new GenerateCall());
        GenerateCall.Result[] out = new GenerateCall.Result[dp];
        for (int r = 0; r < dp; r++) {
            out[r] = results.get(r).value();
        }
        return out;
    }

    /** The responses' scores: reward_inf on the reward model, or the reward function on the driver. */
    private static Scores score(BarrierCallRunner runner, Run run, List<PromptRow> promptRows, int[][] prompts,
                                int[][] responses, String[] texts, String description) {
        int n = prompts.length;
        float[] values = new float[n];
        String[] details = new String[n];
        if (run.rewardFunction() != null) {
            for (int s = 0; s < n; s++) {
                Reward verdict = run.rewardFunction().score(promptRows.get(s), texts[s]);
                values[s] = (float) verdict.value();
                details[s] = verdict.detail();
            }
            return new Scores(values, details);
        }
        int dp = run.dp();
        List<RewardModelCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = r * n / dp;
            int to = (r + 1) * n / dp;
            slices.add(new RewardModelCall.Slice(REWARD, run.reward(), dp, Arrays.copyOfRange(prompts, from, to),
                    Arrays.copyOfRange(responses, from, to)));
        }
        int k = 0;
        for (RankResult<float[]> r : runner.run("reward_inf", description, run.mesh(), slices, new RewardModelCall())) {
            for (float v : r.value()) {
                values[k++] = v;
            }
        }
        return new Scores(values, details);
    }

    /**
     * The held-out prompts answered by the current actor, greedily or with data.eval_samples sampled
     * answers each (the same seeds at every evaluation); their mean clipped reward.
     */
    private static double evaluate(BarrierCallRunner runner, Run run, PromptSet prompts, ModelSource actor,
                                   long version, HfTokenizer tokenizer, int iteration) {
        int k = run.config().data().evalSamples();
        boolean greedy = k == 1;
        List<PromptRow> rows = new ArrayList<>();
        List<int[]> tokens = new ArrayList<>();
        for (int i = 0; i < prompts.heldOut().size(); i++) {
            for (int j = 0; j < k; j++) {
                rows.add(prompts.heldOut().get(i));
                tokens.add(prompts.heldOutTokens().get(i));
            }
        }
        int[][] heldOut = tokens.toArray(new int[0][]);
        int n = heldOut.length;
        GenerateCall.Result[] generated = generate(runner, run, heldOut, actor, version,
                GrpoTraining.evalSeed(run.config().seed()), greedy, "eval actor_gen iteration " + iteration + " ("
                        + (greedy ? "greedy" : k + " samples per prompt") + ", dp=" + run.dp() + ")");
        int[][] responses = new int[n][];
        String[] texts = new String[n];
        int s = 0;
        for (GenerateCall.Result g : generated) {
            for (int j = 0; j < g.responses().length; j++, s++) {
                responses[s] = g.responses()[j];
                texts[s] = tokenizer.decode(withoutEos(responses[s], g.stoppedAtEos()[j]));
            }
        }
        Scores scores = score(runner, run, rows, heldOut, responses, texts,
                "eval reward_inf iteration " + iteration + " (dp=" + run.dp() + ")");
        double clip = run.config().reward().clip();
        double sum = 0;
        for (float v : scores.values()) {
            sum += Math.max(-clip, Math.min(clip, v));
        }
        return sum / n;
    }

    /** The ranks' per-row results in rank order. */
    private static float[][] concat(List<RankResult<float[][]>> results, int rows) {
        float[][] out = new float[rows][];
        int k = 0;
        for (RankResult<float[][]> r : results) {
            for (float[] row : r.value()) {
                out[k++] = row;
            }
        }
        if (k != rows) {
            throw new IllegalStateException(k + " rows came back for " + rows + " responses");
        }
        return out;
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

    private static int[] withoutEos(int[] response, boolean stoppedAtEos) {
        return stoppedAtEos ? Arrays.copyOf(response, response.length - 1) : response;
    }

    /** Writes the critic to {@code <output>/final-critic} (through final-critic.partial, moved into place). */
    private static Path writeFinalCritic(BarrierCallRunner runner, List<DeviceSlot> mesh, String layout, long version,
                                         Path criticDir, Path output) {
        Path finalDir = output.resolve("final-critic");
        Path partial = output.resolve("final-critic.partial");
        try {
            SftTraining.deleteRecursively(partial);
            SaveModelCall.save(runner, mesh, CRITIC, version, layout, criticDir, partial, false);
            SftTraining.deleteRecursively(finalDir);
            Files.move(partial, finalDir, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the final critic to " + finalDir + ": " + e.getMessage(), e);
        }
        return finalDir;
    }
}
