package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.datasets.tables.FinishReason;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
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
import org.sparkrlhf.jobs.executor.ReallocationCall;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.CallScheduler;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.ModelResidency;
import org.sparkrlhf.planner.spec.ModelSpec;

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
 * Every call is a barrier stage with one rank per device of its placement in the run's plan
 * ({@link CallPlacements}), as in GRPO: each trained model (actor, critic) lives on its train
 * call's placement with its optimizer state, and the other calls on it get copies moved by the
 * planner's reallocation plans ({@link ModelResidency}) where their layouts or devices differ; the
 * frozen models (ref, reward) load where their calls run. After actor_gen, reward_inf, ref_inf and
 * critic_inf depend only on the responses, and actor_train and critic_train only on the targets:
 * each group runs through a {@link CallScheduler}, at the same time on disjoint devices and one
 * after another where devices overlap. The plan is appended to the run's plans table with each
 * iteration. Every {@code data.eval_every} iterations (and after the last), when
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
    private record Run(RunConfig config, Placement genAt, Placement rewardAt, ModelSource ref, ModelSource reward,
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
        CallPlacements plan = CallPlacements.choose(config, inventory, progress);
        Placement genAt = plan.placement("actor_gen");
        Placement rewardAt = config.reward().fromModel() ? plan.placement("reward_inf") : null;
        Placement refAt = plan.placement("ref_inf");
        Placement criticAt = plan.placement("critic_inf");
        Placement actorTrainAt = plan.placement("actor_train");
        Placement criticTrainAt = plan.placement("critic_train");
        plan.checkBatchSize(config);
        ModelResidency residency = new ModelResidency(runner, RunScenario.cluster(inventory, RunScenario.gpuPreset(config)));
        ModelSpec actorSpec = RunScenario.model(config, ACTOR);
        ModelSpec criticSpec = RunScenario.model(config, CRITIC);
        RunConfig.OptimizerConfig o = config.optimizer();
        Run run = new Run(config, genAt, rewardAt, new ModelSource(config.models().get(REF).path(), 0),
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
        progress.printf("ppo: %d prompts (%d held out), rewards from %s, critic from %s, %d iterations%n",
                prompts.rows().size(), prompts.heldOut().size(),
                config.reward().fromModel() ? "the reward model " + run.reward().path()
                        : "the reward function " + config.reward().function(),
                criticDir, config.iterations());

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
        IterationTable<PlanRow> plans = IterationTable.plans(spark, GrpoTraining.plansPath(output));
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, SftTraining.metricsPath(output));
        IterationTable<RolloutRow> rollouts = IterationTable.rollouts(spark, GrpoTraining.rolloutsPath(output));
        List<Double> rewards = new ArrayList<>();
        Map<Integer, Double> evaluations = new LinkedHashMap<>();
        long actorVersion = actorSource.version();
        long criticVersion = criticSource.version();
        Map<String, List<ModelResidency.Copy>> stale = new LinkedHashMap<>();
        try (HfTokenizer tokenizer = HfTokenizer.open(actorDir);
             CallScheduler scheduler = new CallScheduler(3)) {
            if (first == 1 && !prompts.heldOut().isEmpty()) {
                // the curve's starting point: the initial actor on the held-out prompts, logged as iteration 0
                long start = System.nanoTime();
                residency.prepare(ACTOR, actorVersion, genAt, actorSpec, actorSource, ReallocationCall.Build.MODEL, null);
                double heldOut = evaluate(runner, residency, run, prompts, actorSource, actorVersion, tokenizer, 0);
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
                String tag = " iteration " + iteration + " (ppo, ";
                long iterationStart = System.nanoTime();

                // actor_gen, on a copy of the actor moved from its home when the layouts differ
                long start = System.nanoTime();
                reallocated(seconds, residency.prepare(ACTOR, actorVersion, genAt, actorSpec, actorSource,
                        ReallocationCall.Build.MODEL, null));
                start = System.nanoTime();
                GenerateCall.Result[] generated = generate(runner, run, batchPrompts, actorSource, actorVersion,
                        GrpoTraining.sampleSeed(config.seed(), iteration), false,
                        "actor_gen" + tag + genAt.layout() + ")");
                residency.holds(ACTOR, actorVersion, genAt);
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

                // reward_inf, ref_inf and critic_inf need only the responses: the scheduler runs those on
                // disjoint devices at the same time. The critic's copy is moved first (from the driver thread).
                reallocated(seconds, residency.prepare(CRITIC, criticVersion, criticAt, criticSpec, criticSource,
                        ReallocationCall.Build.MODEL, null));
                List<CallScheduler.Call> inference = new ArrayList<>();
                Scores[] scored = new Scores[1];
                if (rewardAt == null) {
                    start = System.nanoTime();
                    scored[0] = score(runner, run, run.rewardFunction(), promptRows, batchPrompts, responses, texts, null);
                    seconds.put("reward", (System.nanoTime() - start) / 1e9);
                } else {
                    inference.add(new CallScheduler.Call("reward_inf", List.of(), rewardAt, () ->
                            scored[0] = score(runner, run, run.rewardFunction(), promptRows, batchPrompts, responses, texts,
                                    "reward_inf" + tag + rewardAt.layout() + ")")));
                }
                List<RefLogprobsCall.Slice> refSlices = new ArrayList<>(refAt.dp());
                for (int r = 0; r < refAt.dp(); r++) {
                    int from = r * n / refAt.dp();
                    int to = (r + 1) * n / refAt.dp();
                    refSlices.add(new RefLogprobsCall.Slice(REF, run.ref(), refAt.dp(),
                            Arrays.copyOfRange(batchPrompts, from, to), Arrays.copyOfRange(responses, from, to),
                            special.pad()));
                }
                inference.add(new CallScheduler.Call("ref_inf", List.of(), refAt, () ->
                        concat(refAt.perDataRank(runner.run("ref_inf" + tag + refAt.layout() + ")", refAt,
                                refAt.perRank(refSlices), new RefLogprobsCall())), n)));
                List<ValuesCall.Slice> valueSlices = new ArrayList<>(criticAt.dp());
                for (int r = 0; r < criticAt.dp(); r++) {
                    int from = r * n / criticAt.dp();
                    int to = (r + 1) * n / criticAt.dp();
                    valueSlices.add(new ValuesCall.Slice(CRITIC, criticSource, criticVersion, criticAt.dp(),
                            run.criticOptimizer(), run.headSeed(), Arrays.copyOfRange(batchPrompts, from, to),
                            Arrays.copyOfRange(responses, from, to), special.pad()));
                }
                inference.add(new CallScheduler.Call("critic_inf", List.of(), criticAt, () ->
                        concat(criticAt.perDataRank(runner.run("critic_inf" + tag + criticAt.layout() + ")", criticAt,
                                criticAt.perRank(valueSlices), new ValuesCall())), n)));
                Map<String, CallScheduler.Outcome> inferred = scheduler.runAll(inference);
                if (rewardAt != null) {
                    residency.holds(REWARD, 0, rewardAt);
                }
                residency.holds(REF, 0, refAt);
                residency.holds(CRITIC, criticVersion, criticAt);
                for (String call : List.of("reward_inf", "ref_inf", "critic_inf")) {
                    if (inferred.containsKey(call)) {
                        seconds.put(call, inferred.get(call).seconds());
                    }
                }
                Scores scores = scored[0];
                float[][] refLogprobs = (float[][]) inferred.get("ref_inf").value();
                float[][] values = (float[][]) inferred.get("critic_inf").value();

                // rewards per token, advantages and returns, on the driver
                double klCoef = klController.coef();
                PpoTargets.Result targets = PpoTargets.compute(scores.values(), logprobs, refLogprobs, values, klCoef,
                        estimator, config.reward().clip(), ppo.gamma(), ppo.lambda(), ppo.whitenAdvantages());

                // actor_train and critic_train, over the same mini-batches, each on its model's home (with the
                // optimizer state); at the same time where their devices are disjoint
                int adp = actorTrainAt.dp();
                int[] actorTokens = miniBatchTokens(responses, adp, ppo.miniBatches());
                List<PpoActorTrainCall.Slice> actorSlices = new ArrayList<>(adp);
                for (int r = 0; r < adp; r++) {
                    int from = r * n / adp;
                    int to = (r + 1) * n / adp;
                    actorSlices.add(new PpoActorTrainCall.Slice(ACTOR, actorSource, actorVersion, adp, config.optimizer(),
                            Arrays.copyOfRange(batchPrompts, from, to), Arrays.copyOfRange(responses, from, to),
                            Arrays.copyOfRange(logprobs, from, to), Arrays.copyOfRange(targets.advantages(), from, to),
                            ppo.clipRatio(), ppo.epochs(), actorTokens, special.pad()));
                }
                int cdp = criticTrainAt.dp();
                int[] criticTokens = miniBatchTokens(responses, cdp, ppo.miniBatches());
                List<CriticTrainCall.Slice> criticSlices = new ArrayList<>(cdp);
                for (int r = 0; r < cdp; r++) {
                    int from = r * n / cdp;
                    int to = (r + 1) * n / cdp;
                    criticSlices.add(new CriticTrainCall.Slice(CRITIC, criticSource, criticVersion, cdp,
                            run.criticOptimizer(), run.headSeed(), Arrays.copyOfRange(batchPrompts, from, to),
                            Arrays.copyOfRange(responses, from, to), Arrays.copyOfRange(values, from, to),
                            Arrays.copyOfRange(targets.returns(), from, to), ppo.valueClip(), ppo.valueCoef(),
                            ppo.epochs(), criticTokens, special.pad()));
                }
                reallocated(seconds, residency.prepare(ACTOR, actorVersion, actorTrainAt, actorSpec, actorSource,
                        ReallocationCall.Build.TRAINED_MODEL, config.optimizer()));
                reallocated(seconds, residency.prepare(CRITIC, criticVersion, criticTrainAt, criticSpec, criticSource,
                        ReallocationCall.Build.TRAINED_MODEL, run.criticOptimizer()));
                Map<String, CallScheduler.Outcome> trainedCalls = scheduler.runAll(List.of(
                        new CallScheduler.Call("actor_train", List.of(), actorTrainAt, () ->
                                actorTrainAt.perDataRank(runner.run("actor_train" + tag + actorTrainAt.layout() + ")",
                                        actorTrainAt, actorTrainAt.perRank(actorSlices), new PpoActorTrainCall()))),
                        new CallScheduler.Call("critic_train", List.of(), criticTrainAt, () ->
                                criticTrainAt.perDataRank(runner.run("critic_train" + tag + criticTrainAt.layout() + ")",
                                        criticTrainAt, criticTrainAt.perRank(criticSlices), new CriticTrainCall())))));
                seconds.put("actor_train", trainedCalls.get("actor_train").seconds());
                seconds.put("critic_train", trainedCalls.get("critic_train").seconds());
                @SuppressWarnings("unchecked")
                List<PpoActorTrainCall.Result> actorTrained =
                        (List<PpoActorTrainCall.Result>) trainedCalls.get("actor_train").value();
                @SuppressWarnings("unchecked")
                List<CriticTrainCall.Result> criticTrained =
                        (List<CriticTrainCall.Result>) trainedCalls.get("critic_train").value();
                double callSeconds = (System.nanoTime() - iterationStart) / 1e9;
                PpoActorTrainCall.Result actorStep = actorTrained.get(0);
                CriticTrainCall.Result criticStep = criticTrained.get(0);
                long actorClipped = 0;
                long actorScored = 0;
                double policyKl = 0;
                for (PpoActorTrainCall.Result t : actorTrained) {
                    actorClipped += t.clippedTokens();
                    actorScored += t.tokens();
                    policyKl += t.approxKlSum();
                }
                long criticClipped = 0;
                long criticScored = 0;
                for (CriticTrainCall.Result t : criticTrained) {
                    criticClipped += t.clippedTokens();
                    criticScored += t.tokens();
                }
                long policyVersion = actorVersion;
                actorVersion = actorStep.version();
                criticVersion = criticStep.version();
                // the other copies of the old versions: evicted by the next move to their executors, or released at the end
                stale.put(ACTOR, residency.copies(ACTOR));
                stale.put(CRITIC, residency.copies(CRITIC));
                residency.trained(ACTOR, actorVersion, actorTrainAt);
                residency.trained(CRITIC, criticVersion, criticTrainAt);

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
                    long evalStart = System.nanoTime();
                    reallocated(seconds, residency.prepare(ACTOR, actorVersion, genAt, actorSpec, actorSource,
                            ReallocationCall.Build.MODEL, null));
                    double heldOut = evaluate(runner, residency, run, prompts, actorSource, actorVersion, tokenizer,
                            iteration);
                    evaluations.put(iteration, heldOut);
                    figures.add(new MetricRow("eval/reward_mean", heldOut, now));
                    figures.add(new MetricRow("seconds/eval", (System.nanoTime() - evalStart) / 1e9, now));
                    line.append(String.format(" | eval reward %.3f", heldOut));
                }
                metrics.appendIteration(config.name(), iteration, figures);
                plans.appendIteration(config.name(), iteration, List.of(plan.planRow(seconds,
                        (System.nanoTime() - iterationStart) / 1e9, now)));
                progress.println(line);

                int every = config.checkpoint().every();
                if (every > 0 && iteration % every == 0 && iteration < config.iterations()) {
                    // the sampling counter is the iteration (sampleSeed); the coefficient is the next iteration's
                    RunState state = new RunState(config.name(), iteration, config.seed(), dataSize, order.epoch(),
                            order.offset(), iteration, klController.coef(),
                            Map.of(ACTOR, actorVersion, CRITIC, criticVersion));
                    Placement actorWhole = residency.wholeCopy(ACTOR, actorVersion, actorTrainAt, actorSpec, actorSource);
                    Placement criticWhole = residency.wholeCopy(CRITIC, criticVersion, criticTrainAt, criticSpec,
                            criticSource);
                    RunCheckpoints.Checkpoint saved = checkpoints.save(runner, state, List.of(
                                    new RunCheckpoints.TrainedModel(ACTOR, actorVersion, actorWhole.key(),
                                            actorWhole.devices(), actorDir),
                                    new RunCheckpoints.TrainedModel(CRITIC, criticVersion, criticWhole.key(),
                                            criticWhole.devices(), criticDir)),
                            config.checkpoint().keep());
                    actorSource = saved.source(ACTOR);
                    criticSource = saved.source(CRITIC);
                    progress.printf("checkpoint %s%n", saved.localDir());
                }
            }
        }
        Placement actorWhole = residency.wholeCopy(ACTOR, actorVersion, actorTrainAt, actorSpec, actorSource, false);
        Path finalDir = SftTraining.writeFinal(runner, actorWhole.devices(), actorWhole.key(), actorVersion, actorDir,
                output);
        Placement criticWhole = residency.wholeCopy(CRITIC, criticVersion, criticTrainAt, criticSpec, criticSource,
                false);
        Path finalCritic = writeFinalCritic(runner, criticWhole.devices(), criticWhole.key(), criticVersion, criticDir,
                output);
        progress.printf("final model %s, critic %s%n", finalDir, finalCritic);
        for (String role : List.of(ACTOR, CRITIC, REF, REWARD)) {
            GrpoTraining.release(runner, residency, role);
        }
        for (Map.Entry<String, List<ModelResidency.Copy>> e : stale.entrySet()) {
            for (ModelResidency.Copy c : e.getValue()) {
                List<ReleaseModelsCall.Request> release = new ArrayList<>();
                for (int r = 0; r < c.placement().size(); r++) {
                    release.add(new ReleaseModelsCall.Request(List.of(e.getKey()), List.of(c.version()),
                            c.placement().key()));
                }
                runner.run("release", "release " + e.getKey() + " v" + c.version() + " from " + c.placement().key(),
                        c.placement().devices(), release, new ReleaseModelsCall());
            }
        }
        return new Summary(rewards, evaluations, finalDir, finalCritic);
    }

    /** Sequence scores (unclipped: the clip is applied where they become rewards) and the reward function's verdicts. */
    private record Scores(float[] values, String[] details) {
    }

    /** actor_gen over the data-parallel ranks: one response per prompt, sampled, or greedy without logprobs. */
    private static GenerateCall.Result[] generate(BarrierCallRunner runner, Run run, int[][] prompts,
                                                  ModelSource actor, long version, long seed, boolean greedy, String description) {
        Placement genAt = run.genAt();
        int dp = genAt.dp();
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
        return genAt.perDataRank(runner.run(description, genAt, genAt.perRank(slices), new GenerateCall()))
                .toArray(new GenerateCall.Result[0]);
    }

    /** The responses' scores: the reward function on the driver when there is one, else reward_inf on the reward model. */
    private static Scores score(BarrierCallRunner runner, Run run, RewardFunction function, List<PromptRow> promptRows,
                                int[][] prompts, int[][] responses, String[] texts, String description) {
        int n = prompts.length;
        float[] values = new float[n];
        String[] details = new String[n];
        if (function != null) {
            for (int s = 0; s < n; s++) {
                Reward verdict = function.score(promptRows.get(s), texts[s]);
                values[s] = (float) verdict.value();
                details[s] = verdict.detail();
            }
            return new Scores(values, details);
        }
        return new Scores(RewardModelCall.score(runner, REWARD, run.rewardAt(), run.reward(), prompts, responses, 1,
                description), details);
    }

    /**
     * The held-out prompts answered by the current actor, greedily or with data.eval_samples sampled
     * answers each (the same seeds at every evaluation); their mean clipped reward.
     */
    private static double evaluate(BarrierCallRunner runner, ModelResidency residency, Run run, PromptSet prompts,
                                   ModelSource actor, long version, HfTokenizer tokenizer, int iteration) {
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
                        + (greedy ? "greedy" : k + " samples per prompt") + ", " + run.genAt().layout() + ")");
        residency.holds(ACTOR, version, run.genAt());
        int[][] responses = new int[n][];
        String[] texts = new String[n];
        int s = 0;
        for (GenerateCall.Result g : generated) {
            for (int j = 0; j < g.responses().length; j++, s++) {
                responses[s] = g.responses()[j];
                texts[s] = tokenizer.decode(withoutEos(responses[s], g.stoppedAtEos()[j]));
            }
        }
        // With a reward model and prompts from a task, the task's answer checker scores held-out
        // answers, so the curve measures the task (as GRPO's evaluation does).
        RewardFunction heldOutFunction = GrpoTraining.heldOutRewardFunction(run.config());
        Scores scores = score(runner, run, heldOutFunction, rows, heldOut, responses, texts, run.rewardAt() == null
                ? null : "eval reward_inf iteration " + iteration + " (" + run.rewardAt().layout() + ")");
        if (heldOutFunction == null && run.rewardAt() != null) {
            residency.holds(REWARD, 0, run.rewardAt());
        }
        double clip = run.config().reward().clip();
        double sum = 0;
        for (float v : scores.values()) {
            sum += Math.max(-clip, Math.min(clip, v));
        }
        return sum / n;
    }

    /** The data-parallel ranks' per-row results in rank order. */
    private static float[][] concat(List<float[][]> results, int rows) {
        float[][] out = new float[rows][];
        int k = 0;
        for (float[][] r : results) {
            for (float[] row : r) {
                out[k++] = row;
            }
        }
        if (k != rows) {
            throw new IllegalStateException(k + " rows came back for " + rows + " responses");
        }
        return out;
    }

    /** Each mini-batch's response tokens over the data-parallel ranks (the loss's denominator). */
    private static int[] miniBatchTokens(int[][] responses, int dp, int miniBatches) {
        int n = responses.length;
        int[] tokens = new int[miniBatches];
        for (int r = 0; r < dp; r++) {
            int from = r * n / dp;
            int rows = (r + 1) * n / dp - from;
            for (int m = 0; m < miniBatches; m++) {
                for (int s = from + m * rows / miniBatches; s < from + (m + 1) * rows / miniBatches; s++) {
                    tokens[m] += responses[s].length;
                }
            }
        }
        return tokens;
    }

    /** Adds a reallocation's seconds to the iteration's {@code realloc} figure. */
    private static void reallocated(Map<String, Double> seconds, ModelResidency.Moved moved) {
        if (moved != null) {
            seconds.merge("realloc", moved.seconds(), Double::sum);
        }
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
