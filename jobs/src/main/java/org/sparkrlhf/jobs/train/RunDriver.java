package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.Algorithm;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.CallSpan;
import org.sparkrlhf.jobs.graph.S3dTrainBinding;
import org.sparkrlhf.jobs.graph.IterationDriver;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.SpeculativeDraft;
import org.sparkrlhf.jobs.graph.RunModels;
import org.sparkrlhf.jobs.graph.Seeds;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.CallScheduler;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.ModelResidency;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Runs any algorithm: the one loop of the project. It reads the run's graph from the planner
 * ({@link RunScenario#graph}), plans it, loads the data, resumes from the newest complete checkpoint
 * when asked, and for each iteration takes the next rows in the run's data order, walks the graph
 * ({@link IterationDriver}: calls through the spec's executor functions, hooks on the driver),
 * appends the iteration's rollouts, metrics and plan row to the Delta tables (idempotently, in the
 * background: {@link TableWriter}), prints
 * one progress line, evaluates on the held-out data every {@code data.eval_every} iterations
 * (before the first as iteration 0, and after the last), and checkpoints every
 * {@code checkpoint.every}. At the end each trained model goes to {@code <output>/final} (the first)
 * or {@code final-<role>}, and the run's copies leave the executors' model stores.
 *
 * <p>Figures every algorithm gets, defined once here: {@code seconds/<call>} (a call's stage),
 * {@code seconds/realloc} (moving models between layouts), {@code seconds/<hook>},
 * {@code seconds/iteration} (wall), {@code timeline/<call or hook>/start} and {@code .../end} (seconds
 * from the iteration's start), {@code tokens_per_second} (prompt and response tokens of the
 * iteration's sequences per wall second), and {@code loss/<role>}, {@code grad_norm/<role>} and the
 * loss's own figures ({@code <figure>/<role>}) of each train call.
 */
public final class RunDriver {
    /** Each iteration's figures (name -> value, iterations run here), the held-out evaluations, the final models by role. */
    public record Summary(Map<Integer, Map<String, Double>> figures, Map<Integer, Map<String, Double>> evaluations,
                          Map<String, String> finals) {
        /** A figure's value per iteration, in order. */
        public List<Double> series(String name) {
            List<Double> out = new ArrayList<>();
            for (Map<String, Double> f : figures.values()) {
                if (f.containsKey(name)) {
                    out.add(f.get(name));
                }
            }
            return out;
        }
    }

    /** Every how many iterations the progress shows the plan's estimate against the measured seconds (0: only at the end). */
    public static final String ESTIMATE_EVERY = "spark.rlhf.estimateEvery";

    private RunDriver() {
    }

    /** Runs the config's algorithm: its graph from the planner, its spec from {@link AlgorithmSpecs}. */
    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress, boolean resume) {
        return run(spark, config, RunScenario.graph(config), AlgorithmSpecs.of(config), runner, inventory, progress,
                resume);
    }

    /**
     * Runs any algorithm given as data: {@code graph} (its calls and hooks) and {@code spec} (their
     * bindings, its data and figures), with the run settings of {@code config}. A failure after the
     * set-up is a {@link RunFailure} naming the iteration.
     */
    public static Summary run(SparkSession spark, RunConfig config, DataflowGraph graph, AlgorithmSpec spec,
                              BarrierCallRunner runner, ClusterInventory inventory, PrintStream progress, boolean resume) {
        String output = RunOutput.create(config);
        Path tokenizerDir = modelDir(config, spec.tokenizerRole());
        SpecialTokens special = SpecialTokens.read(tokenizerDir);
        TrainingData data = spec.data(spark, config, tokenizerDir, special, output);
        CallPlacements plan = CallPlacements.choose(pricedConfig(config, data, progress), graph, inventory, progress);
        plan.checkBatchSize(config);
        ModelResidency residency = new ModelResidency(runner, RunScenario.cluster(inventory, RunScenario.gpuPreset(config)));
        RunModels models = new RunModels(runner, residency);
        String rewards = config.reward() == null ? ""
                : config.reward().fromModel() ? ", rewards from the reward model " + config.models().get("reward").path()
                : ", rewards from the reward function " + config.reward().function();
        progress.printf("%s: %s%s, %d iterations%n", graph.algorithm(), data.describe(), rewards, config.iterations());

        RunCheckpoints checkpoints = new RunCheckpoints(output, HadoopFiles.conf());
        Optional<RunCheckpoints.Checkpoint> resumed = checkpoints.resume(config, data.size(), resume, progress);
        DataOrder order = DataOrder.startingAt(data.size(), config.seed(), resumed);
        if (graph.calls().stream().anyMatch(c -> c.kind() == CallKind.GENERATE)) {
            Seeds.checkCounter(resumed);
        }
        for (String role : graph.roles()) {
            boolean trained = graph.isTrainable(role);
            Path dir = modelDir(config, role);
            // a trained model reloads from the checkpoint (weights and optimizer state) after a resume;
            // executors read the config's folder (not the driver's copy of a remote one)
            ModelSource source = trained && resumed.isPresent() ? resumed.get().source(role)
                    : new ModelSource(config.models().get(role).path(), 0);
            models.add(new RunModels.Model(role, dir, RunScenario.model(config, role),
                    trained ? spec.optimizer(config, role) : null), source);
        }
        spec.restore(resumed.map(RunCheckpoints.Checkpoint::state));
        // the actor's S3D draft: from the actor's folder (the checkpoint's on a resume), or initialised by actor_gen
        SpeculativeDraft speculative = config.generation().speculative() != null && graph.roles().contains("actor")
                ? SpeculativeDraft.open(config.generation().speculative(), models.source("actor").localPath(), progress)
                : null;
        int first = resumed.map(c -> c.state().iteration() + 1).orElse(1);
        Optional<AlgorithmSpec.Evaluation> evaluation = spec.evaluation(config, data);
        Map<Integer, Map<String, Double>> figures = new LinkedHashMap<>();
        Map<Integer, Map<String, Double>> evaluations = new LinkedHashMap<>();
        Map<String, Double> estimated = new LinkedHashMap<>(plan.estimatedSeconds());
        if (Double.isFinite(plan.estimatedIterationSeconds())) {
            estimated.put(EstimateCheck.ITERATION, plan.estimatedIterationSeconds());
        }
        EstimateCheck check = new EstimateCheck(estimated, first);
        int checkEvery = Integer.parseInt(config.spark().conf().getOrDefault(ESTIMATE_EVERY, "5"));
        int parallel = graph.size() + graph.hooks().size();
        int iteration = first;
        long loopStart = System.nanoTime();
        try (HfTokenizer tokenizer = HfTokenizer.open(tokenizerDir);
             CallScheduler scheduler = new CallScheduler(parallel);
             TableWriter tables = new TableWriter(spark, output, config.name(), spec.writesRollouts(),
                     TableWriter.commitSeconds(config.spark().conf()))) {
            RunContext run = new RunContext(config, runner, plan, models, special, tokenizer, spec.group(config),
                    speculative);
            IterationDriver driver = new IterationDriver(graph, bindings(graph, spec, config), spec.hooks(config));
            if (first == 1 && evaluation.isPresent()) {
                // the curve's starting point: the initial models on the held-out data, logged as iteration 0
                long start = System.nanoTime();
                AlgorithmSpec.Evaluation.Result e = evaluation.get().evaluate(run, 0);
                evaluations.put(0, e.figures());
                Instant now = Instant.now();
                List<MetricRow> rows = new ArrayList<>();
                e.figures().forEach((k, v) -> rows.add(new MetricRow(k, v, now)));
                rows.add(new MetricRow("seconds/eval", (System.nanoTime() - start) / 1e9, now));
                tables.append(0, List.of(), rows, null);
                progress.printf("iter 0/%d | %s (before training)%n", config.iterations(), e.line());
            }
            for (; iteration <= config.iterations(); iteration++) {
                Keys keys = new Keys(iteration);
                data.batch(order.next(config.data().batchSize()), keys);
                long start = System.nanoTime();
                driver.run(run, keys, scheduler);
                double wall = (System.nanoTime() - start) / 1e9;
                AlgorithmSpec.Report report = spec.report(run, keys, data);
                Instant now = Instant.now();
                List<MetricRow> rows = new ArrayList<>(report.figures());
                StringBuilder line = new StringBuilder(String.format("iter %d/%d | %s", iteration, config.iterations(),
                        report.line()));
                Map<String, Double> seconds = keys.seconds();
                for (Map.Entry<String, Double> e : seconds.entrySet()) {
                    rows.add(new MetricRow("seconds/" + e.getKey(), e.getValue(), now));
                    line.append(String.format(" | %s %.2f s", e.getKey(), e.getValue()));
                }
                for (Map.Entry<String, Double> e : keys.figures().entrySet()) {
                    rows.add(new MetricRow(e.getKey(), e.getValue(), now));
                    // three significant digits, without an exponent for rates in the thousands
                    double v = e.getValue();
                    line.append(String.format(Math.abs(v) >= 100 ? " | %s %.0f" : " | %s %.3g", e.getKey(), v));
                }
                rows.add(new MetricRow("seconds/iteration", wall, now));
                // when each call and hook ran, in seconds from the iteration's start (the run's timeline)
                for (CallSpan span : keys.schedule()) {
                    rows.add(new MetricRow("timeline/" + span.name() + "/start", (span.startNanos() - start) / 1e9, now));
                    rows.add(new MetricRow("timeline/" + span.name() + "/end", (span.endNanos() - start) / 1e9, now));
                }
                double tokensPerSecond = tokens(graph, keys) / wall;
                rows.add(new MetricRow("tokens_per_second", tokensPerSecond, now));
                line.append(String.format(" | %.0f tokens/s", tokensPerSecond));
                if (evaluation.isPresent() && (iteration % config.data().evalEvery() == 0
                        || iteration == config.iterations())) {
                    long evalStart = System.nanoTime();
                    AlgorithmSpec.Evaluation.Result e = evaluation.get().evaluate(run, iteration);
                    evaluations.put(iteration, e.figures());
                    e.figures().forEach((k, v) -> rows.add(new MetricRow(k, v, now)));
                    rows.add(new MetricRow("seconds/eval", (System.nanoTime() - evalStart) / 1e9, now));
                    line.append(" | ").append(e.line());
                }
                tables.append(iteration, report.rollouts(), rows, plan.planRow(seconds, wall, now));
                progress.println(line);
                Map<String, Double> measured = new LinkedHashMap<>(seconds);
                measured.put(EstimateCheck.ITERATION, wall);
                check.add(iteration, measured);
                if (checkEvery > 0 && iteration % checkEvery == 0 && iteration < config.iterations()
                        && !check.line().isEmpty()) {
                    progress.println(check.line());
                }
                Map<String, Double> mine = new LinkedHashMap<>();
                for (MetricRow r : rows) {
                    mine.put(r.name(), r.value());
                }
                figures.put(iteration, mine);

                int every = config.checkpoint().every();
                if (every > 0 && iteration % every == 0 && iteration < config.iterations()) {
                    tables.awaitWritten(); // a resumed run starts after the checkpoint: its tables must hold what it saw
                    checkpoint(run, plan, checkpoints, order, data, iteration, spec, progress);
                }
            }
            tables.awaitWritten();
        } catch (Exception e) {
            // Exception, not RuntimeException: a failed Spark job throws SparkException, checked, from Scala
            throw new RunFailure(Math.min(iteration, config.iterations()), e);
        }
        Map<String, String> finals = new LinkedHashMap<>();
        boolean firstTrained = true;
        try {
            for (RunModels.Model m : models.trainedModels()) {
                Placement whole = models.wholeCopy(m.role(), plan.home(m.role()), false);
                finals.put(m.role(), RunOutput.writeFinal(runner, whole.devices(), m.role(), models.version(m.role()),
                        whole.key(), m.dir(), output, RunOutput.finalName(m.role(), firstTrained)));
                if (m.role().equals("actor") && speculative != null) {
                    speculative.writeTo(finals.get(m.role()));
                }
                firstTrained = false;
            }
        } catch (Exception e) {
            throw new RunFailure(config.iterations(), e);
        }
        if (!check.line().isEmpty()) {
            progress.println(check.line());
        }
        progress.printf("final %s%n", finals);
        models.releaseAll();
        Summary summary = new Summary(figures, evaluations, finals);
        RunSummary.lines(summary, output, (System.nanoTime() - loopStart) / 1e9, spec.writesRollouts())
                .forEach(progress::println);
        return summary;
    }

    /**
     * {@link #pricedConfig} for the profiler, before a run: reads the run's training data as the run
     * will, so that the profile is taken at the lengths the planner will ask about.
     */
    public static RunConfig pricedConfig(SparkSession spark, RunConfig config, PrintStream progress) {
        AlgorithmSpec spec = AlgorithmSpecs.of(config);
        Path tokenizerDir = modelDir(config, spec.tokenizerRole());
        TrainingData data = spec.data(spark, config, tokenizerDir, SpecialTokens.read(tokenizerDir), RunOutput.create(config));
        return pricedConfig(config, data, progress);
    }

    /**
     * The config the planner prices: the data's longest prompt and answer in place of the
     * configured bounds (a call pads a micro-batch to its longest row; the GRPO example's prompts
     * are 5 tokens where max_prompt_tokens is 16, and priced at the bound its calls came out at
     * twice their tokens). Said on the progress lines when it differs from the config.
     */
    static RunConfig pricedConfig(RunConfig config, TrainingData data, PrintStream progress) {
        TrainingData.Lengths l = data.lengths();
        boolean sft = config.algorithm() == Algorithm.SFT;
        // SFT's examples are whole sequences (prompt and answer): the planner prices them as prompts
        int prompt = sft ? l.prompt() : Math.min(l.prompt(), config.data().maxPromptTokens());
        int answer = l.answer() < 1 ? l.answer() : Math.min(l.answer(), config.generation().maxNewTokens());
        if (prompt < 1) {
            return config;
        }
        RunConfig priced = config.pricedAt(prompt, answer);
        if (!sft && (prompt != config.data().maxPromptTokens()
                || priced.generation().maxNewTokens() != config.generation().maxNewTokens())) {
            progress.printf("  priced at the data's lengths: prompts of %d tokens (max_prompt_tokens %d), answers of %d (max_new_tokens %d)%n",
                    prompt, config.data().maxPromptTokens(), priced.generation().maxNewTokens(),
                    config.generation().maxNewTokens());
        }
        return priced;
    }

    /** A role's HF folder on the driver's disk: the config's, or the driver's copy of a remote one (ModelCache). */
    static Path modelDir(RunConfig config, String role) {
        RunConfig.ModelConfig m = config.models().get(role);
        if (m == null) {
            throw new IllegalArgumentException(config.source() + ": models." + role + ": missing (the "
                    + config.algorithm().key() + " graph has calls on it)");
        }
        return new ModelSource(m.path(), 0).localPath();
    }

    /** Prompt and response tokens of the iteration's sequences: the generated ones, or the dataset's. */
    private static long tokens(DataflowGraph graph, Keys keys) {
        long n = 0;
        for (ModelCall c : graph.calls()) {
            if (c.kind() == CallKind.GENERATE && keys.has(c.outputKeys().get(0))) {
                Sequences s = keys.get(c.outputKeys().get(0), Sequences.class);
                n += s.promptTokens() + s.responseTokens();
            }
        }
        if (n == 0 && keys.has("packed_input_ids")) {
            Sequences s = keys.get("packed_input_ids", Sequences.class);
            n = s.promptTokens() + s.responseTokens();
        }
        return n;
    }

    /**
     * The spec's executor functions, and those of the calls any algorithm's graph may get from the
     * run's settings rather than from the algorithm (s3d_train with speculative decoding).
     */
    static Map<String, CallBinding> bindings(DataflowGraph graph, AlgorithmSpec spec, RunConfig config) {
        Map<String, CallBinding> bindings = new LinkedHashMap<>(spec.bindings(config));
        if (graph.calls().stream().anyMatch(c -> c.name().equals(Algorithms.S3D_TRAIN))) {
            bindings.put(Algorithms.S3D_TRAIN, new S3dTrainBinding());
        }
        return bindings;
    }

    /** Writes a checkpoint of every trained model (gathered whole first when sharded), the data position and the coefficient. */
    private static void checkpoint(RunContext run, CallPlacements plan, RunCheckpoints checkpoints, DataOrder order,
                                   TrainingData data, int iteration, AlgorithmSpec spec, PrintStream progress) {
        RunConfig config = run.config();
        RunModels models = run.models();
        Map<String, Long> versions = new LinkedHashMap<>();
        List<RunCheckpoints.TrainedModel> trained = new ArrayList<>();
        for (RunModels.Model m : models.trainedModels()) {
            Placement whole = models.wholeCopy(m.role(), plan.home(m.role()), true);
            versions.put(m.role(), models.version(m.role()));
            trained.add(new RunCheckpoints.TrainedModel(m.role(), models.version(m.role()), whole.key(), whole.devices(),
                    m.dir()));
        }
        // the sampling counter is the iteration (Seeds.sample)
        RunState state = new RunState(config.name(), iteration, config.seed(), data.size(), order.epoch(), order.offset(),
                iteration, spec.checkpointCoef(), versions, spec.checkpointGroupWeights());
        // the actor's S3D draft travels in its folder, where a resumed run reads it
        RunCheckpoints.Checkpoint saved = checkpoints.save(run.runner(), state, trained, config.checkpoint().keep(),
                folder -> {
                    if (run.speculative() != null) {
                        run.speculative().writeCheckpointTo(new org.apache.hadoop.fs.Path(folder, "actor").toString());
                    }
                });
        for (RunModels.Model m : models.trainedModels()) {
            models.checkpointed(m.role(), saved.source(m.role()));
        }
        progress.printf("checkpoint %s%n", saved.dir());
    }
}
