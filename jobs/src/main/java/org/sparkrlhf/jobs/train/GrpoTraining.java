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
import org.sparkrlhf.jobs.algorithms.Advantages;
import org.sparkrlhf.jobs.algorithms.KlEstimator;
import org.sparkrlhf.jobs.calls.GenerateCall;
import org.sparkrlhf.jobs.calls.GrpoTrainCall;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.RefLogprobsCall;
import org.sparkrlhf.jobs.calls.ReleaseModelsCall;
import org.sparkrlhf.jobs.calls.RewardModelCall;
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
import org.sparkrlhf.jobs.runtime.ModelResidency;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * GRPO (Shao et al. 2024) as a Spark job, with rewards from a verifiable reward function or from
 * a reward model. Each iteration:
 * <ol>
 *   <li>the next {@code data.batch_size} prompts in the run's data order (as SFT);</li>
 *   <li>actor_gen: {@code grpo.group_size} sampled responses per prompt (seeded by the run's seed
 *       and the iteration), with their logprobs under the generating policy;</li>
 *   <li>rewards, clipped to [-reward.clip, reward.clip]: from the reward function
 *       ({@code reward.function}, on the driver: it needs no model), or reward_inf: the reward
 *       model's ({@code models.reward}) score of each prompt + response;</li>
 *   <li>ref_inf: the responses' logprobs under the frozen initial actor; reward_inf and ref_inf
 *       need only the responses, so a {@link CallScheduler} runs them at the same time on
 *       disjoint devices and one after the other where their devices overlap (as PPO's);</li>
 *   <li>group-normalised advantages, and actor_train: the clipped GRPO loss with the k3 KL
 *       term, {@code grpo.epochs} x {@code grpo.mini_batches} AdamW steps;</li>
 *   <li>the iteration's rollouts and metrics are appended (idempotently) to the run's Delta
 *       tables, and one progress line is printed.</li>
 * </ol>
 * Every call is a barrier stage with one rank per device of its placement in the run's plan
 * ({@link CallPlacements}); a data-parallel rank's prompts keep all their samples on that rank.
 * Calls on the actor share its parameters: actor_train's placement is the actor's home (with the
 * optimizer state), actor_gen gets a copy reallocated from it whenever layouts or devices differ
 * ({@link ModelResidency}); the frozen models (ref, reward) load from their config folders where
 * their calls run (also after {@code --resume}: checkpoints hold only the actor). The plan is
 * appended to the run's plans table with each iteration. Every {@code data.eval_every}
 * iterations, when {@code data.eval_size > 0} (and before the first iteration, as iteration 0,
 * and after the last), the held-out prompts are answered (greedily, or {@code data.eval_samples}
 * sampled answers each) and their mean clipped reward is logged as {@code eval/reward_mean}: by
 * the reward function; with a reward model, by the task's verifiable reward function when the
 * prompts come from a task ({@code data.task}), else by the reward model
 * ({@link #heldOutRewardFunction}). At the end the actor goes to {@code <output>/final} and the
 * run's replicas leave the executors' model stores.
 */
public final class GrpoTraining {
    private static final String ACTOR = "actor";
    private static final String REF = "ref";
    private static final String REWARD = "reward";

    /** Per-iteration mean rewards, held-out evaluations (iteration -> mean reward), and the final model. */
    public record Summary(List<Double> rewards, Map<Integer, Double> evaluations, Path finalModel) {
    }

    private GrpoTraining() {
    }

    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress) {
        return run(spark, config, runner, inventory, progress, false);
    }

    /**
     * Runs GRPO; with {@code resume}, from the newest complete checkpoint under the run's output
     * (the actor's weights and optimizer state, the data position and the sampling counter), or
     * from the start when there is none. The summary holds the iterations run here.
     */
    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress, boolean resume) {
        if (config.algorithm() != Algorithm.GRPO) {
            throw new IllegalArgumentException("not a GRPO run: " + config.algorithm().key());
        }
        RunConfig.GrpoConfig grpo = config.grpo();
        Path output = SftTraining.localOutput(config);
        Path actorDir = new ModelSource(config.models().get(ACTOR).path(), 0).localPath();
        ModelSource refSource = new ModelSource(config.models().get(REF).path(), 0);
        CallPlacements plan = CallPlacements.choose(config, inventory, progress);
        Placement genAt = plan.placement("actor_gen");
        Placement refAt = plan.placement("ref_inf");
        Placement trainAt = plan.placement("actor_train");
        // with a reward function, rewards are scored on the driver: the plan has no reward_inf
        Placement rewardAt = config.reward().fromModel() ? plan.placement("reward_inf") : null;
        plan.checkBatchSize(config);
        ModelResidency residency = new ModelResidency(runner, RunScenario.cluster(inventory, RunScenario.gpuPreset(config)));
        ModelSpec actorSpec = RunScenario.model(config, ACTOR);
        SftTraining.SpecialTokens special = SftTraining.SpecialTokens.read(actorDir);
        RewardFunction rewardFunction = config.reward().fromModel() ? null
                : RewardFunctions.forTask(config.reward().function());
        ModelSource rewardSource = config.reward().fromModel()
                ? new ModelSource(config.models().get(REWARD).path(), 0) : null;
        RewardFunction heldOutFunction = heldOutRewardFunction(config);
        HeldOutScoring heldOutScoring = new HeldOutScoring(heldOutFunction, heldOutFunction == null ? rewardAt : null,
                rewardSource, residency);
        PromptSet prompts = PromptSet.read(spark, config, actorDir, special.bos(), output);
        progress.printf("grpo: %d prompts (%d held out), %d samples per prompt, rewards from %s, %d iterations%n",
                prompts.rows().size(), prompts.heldOut().size(), grpo.groupSize(),
                rewardFunction == null ? "the reward model " + rewardSource.path()
                        : "the reward function " + config.reward().function(), config.iterations());

        RunCheckpoints checkpoints = new RunCheckpoints(output.toUri().toString(), new Configuration());
        int dataSize = prompts.rows().size();
        Optional<RunCheckpoints.Checkpoint> resumed = checkpoints.resume(config, dataSize, resume, progress);
        DataOrder order = DataOrder.startingAt(dataSize, config.seed(), resumed);
        // after a checkpoint, where a lost executor reloads the actor from (weights and optimizer state)
        ModelSource actorSource = resumed.map(c -> c.source(ACTOR)).orElseGet(() -> new ModelSource(actorDir.toString(), 0));
        int first = resumed.map(c -> c.state().iteration() + 1).orElse(1);
        checkSamplingCounter(resumed);
        IterationTable<PlanRow> plans = IterationTable.plans(spark, plansPath(output));
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, SftTraining.metricsPath(output));
        IterationTable<RolloutRow> rollouts = IterationTable.rollouts(spark, rolloutsPath(output));
        int[] eos = {special.eos()};
        List<Double> rewards = new ArrayList<>();
        Map<Integer, Double> evaluations = new LinkedHashMap<>();
        long version = actorSource.version();
        try (HfTokenizer tokenizer = HfTokenizer.open(actorDir);
             CallScheduler scheduler = new CallScheduler(2)) {
            if (first == 1 && !prompts.heldOut().isEmpty()) {
                // the curve's starting point: the initial actor on the held-out prompts, logged as iteration 0
                long start = System.nanoTime();
                residency.prepare(ACTOR, version, genAt, actorSpec, actorSource, ReallocationCall.Build.MODEL, null);
                double heldOut = evaluate(runner, genAt, config, prompts, actorSource, version, special,
                        heldOutScoring, tokenizer, 0);
                residency.holds(ACTOR, version, genAt);
                double evalSeconds = (System.nanoTime() - start) / 1e9;
                evaluations.put(0, heldOut);
                Instant now = Instant.now();
                metrics.appendIteration(config.name(), 0, List.of(new MetricRow("eval/reward_mean", heldOut, now),
                        new MetricRow("seconds/eval_gen", evalSeconds, now)));
                progress.printf("iter 0/%d | eval reward %.3f (before training)%n", config.iterations(), heldOut);
            }
            for (int iteration = first; iteration <= config.iterations(); iteration++) {
                List<Integer> picked = order.next(config.data().batchSize());
                int promptCount = picked.size();
                int groupSize = grpo.groupSize();
                int samples = promptCount * groupSize;
                int[][] batchPrompts = new int[promptCount][];
                for (int i = 0; i < promptCount; i++) {
                    batchPrompts[i] = prompts.tokens().get(picked.get(i));
                }
                Map<String, Double> seconds = new LinkedHashMap<>();
                long iterationStart = System.nanoTime();

                // actor_gen, on a copy of the actor moved from its home when the layouts differ
                int dp = genAt.dp();
                List<GenerateCall.Slice> genSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * promptCount / dp;
                    int to = (r + 1) * promptCount / dp;
                    genSlices.add(new GenerateCall.Slice(ACTOR, actorSource, version, dp, config.optimizer(),
                            Arrays.copyOfRange(batchPrompts, from, to), from * groupSize, groupSize,
                            config.generation().maxNewTokens(), (float) config.generation().temperature(),
                            config.generation().topK(), (float) config.generation().topP(),
                            sampleSeed(config.seed(), iteration), eos, special.pad(), true));
                }
                long start = System.nanoTime();
                reallocated(seconds, residency.prepare(ACTOR, version, genAt, actorSpec, actorSource,
                        ReallocationCall.Build.MODEL, null));
                start = System.nanoTime();
                List<GenerateCall.Result> generated = genAt.perDataRank(runner.run(
                        "actor_gen iteration " + iteration + " (grpo, " + genAt.layout() + ")", genAt,
                        genAt.perRank(genSlices), new GenerateCall()));
                residency.holds(ACTOR, version, genAt);
                seconds.put("actor_gen", (System.nanoTime() - start) / 1e9);
                int[][] responses = new int[samples][];
                boolean[] stopped = new boolean[samples];
                float[][] logprobs = new float[samples][];
                int k = 0;
                for (GenerateCall.Result g : generated) {
                    for (int j = 0; j < g.responses().length; j++, k++) {
                        responses[k] = g.responses()[j];
                        stopped[k] = g.stoppedAtEos()[j];
                        logprobs[k] = g.logprobs()[j];
                    }
                }
                int[][] samplePrompts = new int[samples][];
                for (int s = 0; s < samples; s++) {
                    samplePrompts[s] = batchPrompts[s / groupSize];
                }

                // rewards: the reward function's on the driver, or reward_inf on the reward model; reward_inf
                // and ref_inf need only the responses, so the scheduler runs them on disjoint devices at once
                String[] texts = new String[samples];
                for (int s = 0; s < samples; s++) {
                    texts[s] = tokenizer.decode(withoutEos(responses[s], stopped[s]));
                }
                float[] scores = new float[samples];
                String[] details = new String[samples];
                double clip = config.reward().clip();
                List<CallScheduler.Call> inference = new ArrayList<>();
                if (rewardAt == null) {
                    start = System.nanoTime();
                    for (int s = 0; s < samples; s++) {
                        Reward verdict = rewardFunction.score(prompts.rows().get(picked.get(s / groupSize)), texts[s]);
                        scores[s] = (float) Math.max(-clip, Math.min(clip, verdict.value()));
                        details[s] = verdict.detail();
                    }
                    seconds.put("reward", (System.nanoTime() - start) / 1e9);
                } else {
                    String description = "reward_inf iteration " + iteration + " (grpo, " + rewardAt.layout() + ")";
                    inference.add(new CallScheduler.Call("reward_inf", List.of(), rewardAt, () ->
                            RewardModelCall.score(runner, REWARD, rewardAt, rewardSource, samplePrompts, responses,
                                    groupSize, description)));
                }
                dp = refAt.dp();
                List<RefLogprobsCall.Slice> refSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * promptCount / dp * groupSize;
                    int to = (r + 1) * promptCount / dp * groupSize;
                    refSlices.add(new RefLogprobsCall.Slice(REF, refSource, dp, Arrays.copyOfRange(samplePrompts, from, to),
                            Arrays.copyOfRange(responses, from, to), special.pad()));
                }
                String refDescription = "ref_inf iteration " + iteration + " (grpo, " + refAt.layout() + ")";
                inference.add(new CallScheduler.Call("ref_inf", List.of(), refAt, () ->
                        refAt.perDataRank(runner.run(refDescription, refAt, refAt.perRank(refSlices),
                                new RefLogprobsCall()))));
                Map<String, CallScheduler.Outcome> inferred = scheduler.runAll(inference);
                residency.holds(REF, 0, refAt);
                if (rewardAt != null) {
                    residency.holds(REWARD, 0, rewardAt);
                    seconds.put("reward_inf", inferred.get("reward_inf").seconds());
                    float[] modelScores = (float[]) inferred.get("reward_inf").value();
                    for (int s = 0; s < samples; s++) {
                        scores[s] = (float) Math.max(-clip, Math.min(clip, modelScores[s]));
                    }
                }
                seconds.put("ref_inf", inferred.get("ref_inf").seconds());
                @SuppressWarnings("unchecked")
                List<float[][]> refResults = (List<float[][]>) inferred.get("ref_inf").value();
                float[][] refLogprobs = new float[samples][];
                k = 0;
                for (float[][] rr : refResults) {
                    for (float[] row : rr) {
                        refLogprobs[k++] = row;
                    }
                }

                // advantages and KL, on the driver
                float[] advantages = Advantages.groupNormalised(scores, groupSize);
                double[] sequenceKl = new double[samples];
                double klSum = 0;
                long tokens = 0;
                for (int s = 0; s < samples; s++) {
                    double sum = 0;
                    for (int t = 0; t < responses[s].length; t++) {
                        sum += KlEstimator.K3.value(logprobs[s][t], refLogprobs[s][t]);
                    }
                    sequenceKl[s] = sum / responses[s].length;
                    klSum += sum;
                    tokens += responses[s].length;
                }

                // actor_train, on the actor's home
                dp = trainAt.dp();
                int miniBatches = grpo.miniBatches();
                int[] miniBatchTokens = new int[miniBatches];
                for (int r = 0; r < dp; r++) {
                    int from = r * promptCount / dp * groupSize;
                    int n = (r + 1) * promptCount / dp * groupSize - from;
                    for (int m = 0; m < miniBatches; m++) {
                        for (int s = from + m * n / miniBatches; s < from + (m + 1) * n / miniBatches; s++) {
                            miniBatchTokens[m] += responses[s].length;
                        }
                    }
                }
                List<GrpoTrainCall.Slice> trainSlices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = r * promptCount / dp * groupSize;
                    int to = (r + 1) * promptCount / dp * groupSize;
                    trainSlices.add(new GrpoTrainCall.Slice(ACTOR, actorSource, version, dp, config.optimizer(),
                            Arrays.copyOfRange(samplePrompts, from, to), Arrays.copyOfRange(responses, from, to),
                            Arrays.copyOfRange(logprobs, from, to), Arrays.copyOfRange(refLogprobs, from, to),
                            Arrays.copyOfRange(advantages, from, to), grpo.clipRatio(), grpo.klCoef(), grpo.epochs(),
                            miniBatchTokens, special.pad()));
                }
                start = System.nanoTime();
                reallocated(seconds, residency.prepare(ACTOR, version, trainAt, actorSpec, actorSource,
                        ReallocationCall.Build.TRAINED_MODEL, config.optimizer()));
                start = System.nanoTime();
                List<GrpoTrainCall.Result> trained = trainAt.perDataRank(runner.run(
                        "actor_train iteration " + iteration + " (grpo, " + trainAt.layout() + ")", trainAt,
                        trainAt.perRank(trainSlices), new GrpoTrainCall()));
                seconds.put("actor_train", (System.nanoTime() - start) / 1e9);
                GrpoTrainCall.Result step = trained.get(0);
                long clipped = 0;
                long scored = 0;
                for (GrpoTrainCall.Result t : trained) {
                    clipped += t.clippedTokens();
                    scored += t.tokens();
                }
                long policyVersion = version;
                version = step.version();
                residency.trained(ACTOR, version, trainAt);

                // tables and progress
                Instant now = Instant.now();
                List<RolloutRow> rows = new ArrayList<>(samples);
                double rewardSum = 0;
                int correct = 0;
                for (int s = 0; s < samples; s++) {
                    PromptRow prompt = prompts.rows().get(picked.get(s / groupSize));
                    float[] perToken = new float[responses[s].length];
                    Arrays.fill(perToken, advantages[s]);
                    rows.add(new RolloutRow(prompt.id(), prompt.group(), prompt.prompt(), texts[s], samplePrompts[s],
                            responses[s], logprobs[s], refLogprobs[s], null, perToken, null, null, scores[s],
                            details[s], sequenceKl[s], stopped[s] ? FinishReason.STOP : FinishReason.LENGTH,
                            policyVersion, now));
                    rewardSum += scores[s];
                    if (Reward.CORRECT.equals(details[s])) {
                        correct++;
                    }
                }
                double rewardMean = rewardSum / samples;
                double kl = klSum / tokens;
                double length = (double) tokens / samples;
                long promptTokens = 0;
                for (int[] p : samplePrompts) {
                    promptTokens += p.length;
                }
                double callSeconds = seconds.values().stream().mapToDouble(Double::doubleValue).sum();
                // every token the iteration's calls processed (each sample's prompt and response), per call-second
                double tokensPerSecond = (promptTokens + tokens) / callSeconds;
                rewards.add(rewardMean);
                rollouts.appendIteration(config.name(), iteration, rows);
                List<MetricRow> figures = new ArrayList<>(List.of(
                        new MetricRow("reward/mean", rewardMean, now),
                        new MetricRow("kl/ref", kl, now),
                        new MetricRow("response_length/mean", length, now),
                        new MetricRow("loss/actor", step.loss(), now),
                        new MetricRow("grad_norm/actor", step.gradNorm(), now),
                        new MetricRow("clip_fraction/actor", scored == 0 ? 0 : (double) clipped / scored, now),
                        new MetricRow("tokens_per_second", tokensPerSecond, now)));
                if (rewardAt == null) {
                    // a reward model's scores have no verdicts
                    figures.add(new MetricRow("reward/correct_fraction", (double) correct / samples, now));
                }
                for (Map.Entry<String, Double> e : seconds.entrySet()) {
                    figures.add(new MetricRow("seconds/" + e.getKey(), e.getValue(), now));
                }
                StringBuilder line = new StringBuilder(String.format("iter %d/%d | reward %.3f", iteration,
                        config.iterations(), rewardMean));
                if (rewardAt == null) {
                    line.append(String.format(" | correct %.3f", (double) correct / samples));
                }
                line.append(String.format(" | kl %.5f | len %.2f | loss %.4f | grad norm %.3f", kl, length, step.loss(),
                        step.gradNorm()));
                for (Map.Entry<String, Double> e : seconds.entrySet()) {
                    line.append(String.format(" | %s %.2f s", e.getKey(), e.getValue()));
                }
                line.append(String.format(" | %.0f tokens/s", tokensPerSecond));
                int evalEvery = config.data().evalEvery();
                if (!prompts.heldOut().isEmpty() && (iteration % evalEvery == 0 || iteration == config.iterations())) {
                    start = System.nanoTime();
                    reallocated(seconds, residency.prepare(ACTOR, version, genAt, actorSpec, actorSource,
                            ReallocationCall.Build.MODEL, null));
                    double heldOut = evaluate(runner, genAt, config, prompts, actorSource, version, special,
                            heldOutScoring, tokenizer, iteration);
                    residency.holds(ACTOR, version, genAt);
                    double evalSeconds = (System.nanoTime() - start) / 1e9;
                    evaluations.put(iteration, heldOut);
                    figures.add(new MetricRow("eval/reward_mean", heldOut, now));
                    figures.add(new MetricRow("seconds/eval_gen", evalSeconds, now));
                    line.append(String.format(" | eval reward %.3f", heldOut));
                }
                metrics.appendIteration(config.name(), iteration, figures);
                plans.appendIteration(config.name(), iteration, List.of(plan.planRow(seconds,
                        (System.nanoTime() - iterationStart) / 1e9, now)));
                progress.println(line);

                int every = config.checkpoint().every();
                if (every > 0 && iteration % every == 0 && iteration < config.iterations()) {
                    Placement whole = residency.wholeCopy(ACTOR, version, trainAt, actorSpec, actorSource);
                    RunState state = new RunState(config.name(), iteration, config.seed(), dataSize, order.epoch(),
                            order.offset(), iteration, grpo.klCoef(), Map.of(ACTOR, version));
                    RunCheckpoints.Checkpoint saved = checkpoints.save(runner, state,
                            List.of(new RunCheckpoints.TrainedModel(ACTOR, version, whole.key(), whole.devices(), actorDir)),
                            config.checkpoint().keep());
                    actorSource = saved.source(ACTOR);
                    progress.printf("checkpoint %s%n", saved.localDir());
                }
            }
        }
        Placement whole = residency.wholeCopy(ACTOR, version, trainAt, actorSpec, actorSource, false);
        Path finalDir = SftTraining.writeFinal(runner, whole.devices(), whole.key(), version, actorDir, output);
        progress.printf("final model %s%n", finalDir);
        release(runner, residency, ACTOR);
        release(runner, residency, REF);
        release(runner, residency, REWARD);
        return new Summary(rewards, evaluations, finalDir);
    }

    /** Drops every copy of {@code role} from the executors' stores. */
    static void release(BarrierCallRunner runner, ModelResidency residency, String role) {
        for (ModelResidency.Copy c : residency.copies(role)) {
            List<ReleaseModelsCall.Request> release = new ArrayList<>();
            for (int r = 0; r < c.placement().size(); r++) {
                release.add(new ReleaseModelsCall.Request(List.of(role), List.of(c.version()), c.placement().key()));
            }
            runner.run("release", "release " + role + " from " + c.placement().key(), c.placement().devices(), release,
                    new ReleaseModelsCall());
        }
        residency.forget(role);
    }

    /** Adds a reallocation's seconds to the iteration's {@code realloc} figure. */
    private static void reallocated(Map<String, Double> seconds, ModelResidency.Moved moved) {
        if (moved != null) {
            seconds.merge("realloc", moved.seconds(), Double::sum);
        }
    }

    /** The run's plans Delta table. */
    public static String plansPath(Path output) {
        return output.resolve("tables").resolve("plans").toString();
    }

    /** The run's rollouts Delta table. */
    public static String rolloutsPath(Path output) {
        return output.resolve("tables").resolve("rollouts").toString();
    }

    /** The sampling seed of an iteration: a pure function of the run's seed and the iteration. */
    static long sampleSeed(long seed, int iteration) {
        return seed * 0x9E3779B97F4A7C15L + iteration;
    }

    /**
     * The sampling seed of iteration i is drawn at counter i ({@link #sampleSeed}), so a checkpoint's
     * RNG counter is its iteration and a resumed run continues the stream; anything else is an error.
     */
    static void checkSamplingCounter(Optional<RunCheckpoints.Checkpoint> resumed) {
        resumed.ifPresent(c -> {
            if (c.state().rngCounter() != c.state().iteration()) {
                throw new IllegalStateException(c.dir() + ": a checkpoint's RNG counter is its iteration, got "
                        + c.state().rngCounter() + " at iteration " + c.state().iteration());
            }
        });
    }

    /**
     * What scores the held-out answers ({@code eval/reward_mean}): the run's reward function; with a
     * reward model, the task's verifiable reward function when the prompts come from a task
     * ({@code data.task}), so that the curve measures the task and not the reward model's opinion of
     * it; else null: the reward model scores them as it scores the training responses.
     */
    static RewardFunction heldOutRewardFunction(RunConfig config) {
        if (!config.reward().fromModel()) {
            return RewardFunctions.forTask(config.reward().function());
        }
        return config.data().task() == null ? null : RewardFunctions.forTask(config.data().task());
    }

    /** How held-out answers are scored: by {@code function}, or (when it is null) by the reward model on {@code rewardAt}. */
    private record HeldOutScoring(RewardFunction function, Placement rewardAt, ModelSource rewardSource,
                                  ModelResidency residency) {
    }

    /**
     * The held-out prompts answered by the current actor, greedily or with data.eval_samples sampled
     * answers each (seeded by {@link #evalSeed}, the same at every evaluation); their mean clipped
     * reward, scored as {@code scoring} says.
     */
    private static double evaluate(BarrierCallRunner runner, Placement genAt, RunConfig config, PromptSet prompts,
                                   ModelSource actorSource, long version, SftTraining.SpecialTokens special,
                                   HeldOutScoring scoring, HfTokenizer tokenizer, int iteration) {
        int dp = genAt.dp();
        int n = prompts.heldOut().size();
        int k = config.data().evalSamples();
        boolean greedy = k == 1;
        RunConfig.GenerationConfig g = config.generation();
        List<GenerateCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = r * n / dp;
            int to = (r + 1) * n / dp;
            slices.add(new GenerateCall.Slice(ACTOR, actorSource, version, dp, config.optimizer(),
                    prompts.heldOutTokens().subList(from, to).toArray(new int[0][]), from * k, k, g.maxNewTokens(),
                    greedy ? 0f : (float) g.temperature(), greedy ? 0 : g.topK(), greedy ? 1f : (float) g.topP(),
                    greedy ? 0 : evalSeed(config.seed()), new int[]{special.eos()}, special.pad(), false));
        }
        String how = greedy ? "greedy" : k + " samples per prompt";
        List<GenerateCall.Result> results = genAt.perDataRank(runner.run(
                "eval actor_gen iteration " + iteration + " (" + how + ", " + genAt.layout() + ")", genAt,
                genAt.perRank(slices), new GenerateCall()));
        int[][] heldOutPrompts = new int[n * k][];
        int[][] responses = new int[n * k][];
        double[] values = new double[n * k];
        int s = 0;
        for (GenerateCall.Result result : results) {
            for (int j = 0; j < result.responses().length; j++, s++) {
                heldOutPrompts[s] = prompts.heldOutTokens().get(s / k);
                responses[s] = result.responses()[j];
                if (scoring.function() != null) {
                    String text = tokenizer.decode(withoutEos(result.responses()[j], result.stoppedAtEos()[j]));
                    values[s] = scoring.function().score(prompts.heldOut().get(s / k), text).value();
                }
            }
        }
        if (scoring.function() == null) {
            Placement rewardAt = scoring.rewardAt();
            float[] scores = RewardModelCall.score(runner, REWARD, rewardAt, scoring.rewardSource(), heldOutPrompts,
                    responses, k, "eval reward_inf iteration " + iteration + " (" + rewardAt.layout() + ")");
            scoring.residency().holds(REWARD, 0, rewardAt);
            for (int i = 0; i < s; i++) {
                values[i] = scores[i];
            }
        }
        double sum = 0;
        double clip = config.reward().clip();
        for (double value : values) {
            sum += Math.max(-clip, Math.min(clip, value));
        }
        return sum / ((double) n * k);
    }

    /** The seed of held-out sampling: the same at every evaluation, and no iteration's ({@link #sampleSeed} of i >= 0). */
    static long evalSeed(long seed) {
        return sampleSeed(seed, -1);
    }

    private static int[] withoutEos(int[] response, boolean stoppedAtEos) {
        return stoppedAtEos ? Arrays.copyOf(response, response.length - 1) : response;
    }
}
