package org.sparkrlhf.jobs.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.DatasetFormat;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.DatasetReader;
import org.sparkrlhf.datasets.ReadOptions;
import org.sparkrlhf.datasets.SftRow;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.Algorithm;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
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
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Supervised fine-tuning of the actor as a Spark job: each iteration takes the next
 * {@code data.batch_size} examples in the run's data order and runs one actor_train call on its
 * placement in the run's plan ({@link CallPlacements}: baseline, search, plan file or manual; any
 * dp x tp x pp, with the plan's micro-batches), the batch split across the data-parallel
 * replicas. The actor stays resident in the executors between iterations, with its optimizer
 * state, on that placement. The plan is appended to the run's plans table with each iteration;
 * checkpoints every {@code checkpoint.every} iterations (a sharded actor's weights and AdamW
 * moments gathered whole, see {@link ModelResidency#wholeCopy}), and the final model, gathered whole
 * when it is sharded, goes to {@code <output>/final} as an HF folder (weights, config, tokenizer) that
 * the PPO and GRPO examples start from.
 *
 * <p>A training example is [bos] + prompt + answer + [eos], truncated to max_prompt_tokens +
 * max_new_tokens, with the loss on the answer and eos tokens only (the prompt is the task's
 * input, as TRL's and OpenRLHF's SFT do for prompt-completion data).
 */
public final class SftTraining {
    private static final String CALL = "actor_train";
    private static final String ROLE = "actor";

    /** Per-iteration losses, and where the final model went. */
    public record Summary(List<Double> losses, Path finalModel) {
    }

    private SftTraining() {
    }

    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress) {
        return run(spark, config, runner, inventory, progress, false);
    }

    /**
     * Runs SFT; with {@code resume}, from the newest complete checkpoint under the run's output
     * (weights, optimizer state and data position), or from the start when there is none. The
     * summary's losses are those of the iterations run here.
     */
    public static Summary run(SparkSession spark, RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress, boolean resume) {
        if (config.algorithm() != Algorithm.SFT) {
            throw new IllegalArgumentException("not an SFT run: " + config.algorithm().key());
        }
        if (config.data().path() == null) {
            throw new UnsupportedOperationException(config.source() + ": data.task: generated SFT tasks are not "
                    + "available yet; give data.path (an SFT dataset: prompt, answer)");
        }
        Path output = localOutput(config);
        Path actorDir = new ModelSource(config.models().get(ROLE).path(), 0).localPath();
        CallPlacements plan = CallPlacements.choose(config, inventory, progress);
        Placement trainAt = plan.placement(CALL);
        int dp = trainAt.dp();
        plan.checkBatchSize(config);
        ModelResidency residency = new ModelResidency(runner, RunScenario.cluster(inventory, RunScenario.gpuPreset(config)));
        ModelSpec actorSpec = RunScenario.model(config, ROLE);
        SpecialTokens special = SpecialTokens.read(actorDir);
        List<Example> examples = tokenize(spark, config, actorDir, special);
        progress.printf("sft: %d examples, actor_train on %d device(s) (dp=%d, tp=%d, pp=%d, micro_batches=%d), "
                        + "%d iterations%n", examples.size(), trainAt.size(), dp, trainAt.tp(), trainAt.pp(),
                trainAt.microBatches(), config.iterations());

        RunCheckpoints checkpoints = new RunCheckpoints(output.toUri().toString(), new Configuration());
        Optional<RunCheckpoints.Checkpoint> resumed = checkpoints.resume(config, examples.size(), resume, progress);
        DataOrder order = DataOrder.startingAt(examples.size(), config.seed(), resumed);
        // where a lost executor reloads the actor from: the initial model, then the newest checkpoint
        ModelSource source = resumed.map(c -> c.source(ROLE)).orElseGet(() -> new ModelSource(actorDir.toString(), 0));
        long version = source.version();
        int first = resumed.map(c -> c.state().iteration() + 1).orElse(1);
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, metricsPath(output));
        IterationTable<PlanRow> plans = IterationTable.plans(spark, GrpoTraining.plansPath(output));
        List<Double> losses = new ArrayList<>();
        for (int iteration = first; iteration <= config.iterations(); iteration++) {
            List<Example> batch = order.next(config.data().batchSize()).stream().map(examples::get).toList();
            int targets = batch.stream().mapToInt(Example::targets).sum();
            List<SftTrainCall.Slice> slices = new ArrayList<>(dp);
            for (int r = 0; r < dp; r++) {
                int from = r * batch.size() / dp;
                int to = (r + 1) * batch.size() / dp;
                List<Example> part = batch.subList(from, to);
                slices.add(new SftTrainCall.Slice(ROLE, source, version, dp,
                        part.stream().map(Example::ids).toArray(int[][]::new),
                        part.stream().mapToInt(Example::promptTokens).toArray(), special.pad(), targets,
                        config.optimizer()));
            }
            long start = System.nanoTime();
            // the actor lives on actor_train's placement between iterations (with its optimizer state); the
            // first call, or one after a lost executor, loads it from the source
            List<SftTrainCall.Result> results = trainAt.perDataRank(runner.run(
                    CALL + " iteration " + iteration + " (sft, " + trainAt.layout() + ")", trainAt,
                    trainAt.perRank(slices), new SftTrainCall()));
            double seconds = (System.nanoTime() - start) / 1e9;
            SftTrainCall.Result step = results.get(0);
            double loss = step.loss();
            version = step.version();
            residency.trained(ROLE, version, trainAt);
            losses.add(loss);
            progress.printf("iter %d/%d | loss %.4f | grad norm %.3f | %s %.2f s | %.0f tokens/s%n", iteration,
                    config.iterations(), loss, step.gradNorm(), CALL, seconds, (targets + batch.size()) / seconds);
            Instant now = Instant.now();
            metrics.appendIteration(config.name(), iteration, List.of(
                    new MetricRow("loss/actor", loss, now),
                    new MetricRow("grad_norm/actor", step.gradNorm(), now),
                    new MetricRow("seconds/" + CALL, seconds, now),
                    new MetricRow("tokens_per_second/" + CALL, (targets + batch.size()) / seconds, now)));
            plans.appendIteration(config.name(), iteration, List.of(plan.planRow(Map.of(CALL, seconds), seconds, now)));
            int every = config.checkpoint().every();
            if (every > 0 && iteration % every == 0 && iteration < config.iterations()) {
                Placement whole = residency.wholeCopy(ROLE, version, trainAt, actorSpec, source);
                RunState state = new RunState(config.name(), iteration, config.seed(), examples.size(), order.epoch(),
                        order.offset(), 0, 0.0, Map.of(ROLE, version));
                RunCheckpoints.Checkpoint saved = checkpoints.save(runner, state,
                        List.of(new RunCheckpoints.TrainedModel(ROLE, version, whole.key(), whole.devices(), actorDir)),
                        config.checkpoint().keep());
                source = saved.source(ROLE);
                progress.printf("checkpoint %s%n", saved.localDir());
            }
        }
        Placement whole = residency.wholeCopy(ROLE, version, trainAt, actorSpec, source, false);
        Path finalDir = writeFinal(runner, whole.devices(), whole.key(), version, actorDir, output);
        progress.printf("final model %s%n", finalDir);
        GrpoTraining.release(runner, residency, ROLE);
        return new Summary(losses, finalDir);
    }

    /** Writes the actor at {@code version} to {@code <output>/final} (through final.partial, moved into place). */
    static Path writeFinal(BarrierCallRunner runner, List<DeviceSlot> mesh, String layout, long version, Path actorDir,
                           Path output) {
        Path finalDir = output.resolve("final");
        Path partial = output.resolve("final.partial");
        try {
            deleteRecursively(partial);
            save(runner, mesh, layout, version, actorDir, partial);
            deleteRecursively(finalDir);
            Files.move(partial, finalDir, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the final model to " + finalDir + ": " + e.getMessage(), e);
        }
        return finalDir;
    }

    /** The run's metrics Delta table. */
    public static String metricsPath(Path output) {
        return output.resolve("tables").resolve("metrics").toString();
    }

    static void save(BarrierCallRunner runner, List<DeviceSlot> mesh, String layout, long version,
                             Path actorDir, Path dir) throws IOException {
        SaveModelCall.save(runner, mesh, ROLE, version, layout, actorDir, dir, false);
    }

    /** One training example: [bos] + prompt + answer + [eos], of which the first promptTokens are not trained on. */
    record Example(int[] ids, int promptTokens) {
        int targets() {
            return ids.length - promptTokens;
        }
    }

    private static List<Example> tokenize(SparkSession spark, RunConfig config, Path actorDir, SpecialTokens special) {
        ReadOptions options = ReadOptions.defaults().withFormat(DatasetFormat.parse(config.data().format()));
        List<SftRow> rows = new ArrayList<>(DatasetReader.read(spark, config.data().path(), DatasetKind.SFT, options)
                .collectSft());
        rows.sort(Comparator.comparing(SftRow::id));
        int maxLength = config.data().maxPromptTokens() + config.generation().maxNewTokens();
        List<Example> examples = new ArrayList<>(rows.size());
        try (HfTokenizer tokenizer = HfTokenizer.open(actorDir)) {
            for (SftRow row : rows) {
                if (row.prompt() == null) {
                    throw new UnsupportedOperationException(config.data().path() + ": example " + row.id()
                            + ": chat messages need a chat template, which SFT does not apply yet; give a prompt text");
                }
                int[] prompt = tokenizer.encodeInts(row.prompt());
                int[] answer = tokenizer.encodeInts(row.answer());
                int length = Math.min(maxLength, 1 + prompt.length + answer.length + 1);
                int[] ids = new int[length];
                int n = 0;
                ids[n++] = special.bos();
                for (int i = 0; i < prompt.length && n < length; i++) {
                    ids[n++] = prompt[i];
                }
                for (int i = 0; i < answer.length && n < length; i++) {
                    ids[n++] = answer[i];
                }
                if (n < length) {
                    ids[n++] = special.eos();
                }
                if (n < 2) {
                    throw new IllegalArgumentException(config.data().path() + ": example " + row.id() + " has no tokens");
                }
                if (n <= 1 + prompt.length) {
                    throw new IllegalArgumentException(config.data().path() + ": example " + row.id() + ": the prompt fills "
                            + "max_prompt_tokens + max_new_tokens = " + maxLength + " tokens; nothing of the answer is left to train on");
                }
                examples.add(new Example(ids, 1 + prompt.length));
            }
        }
        if (examples.isEmpty()) {
            throw new IllegalArgumentException(config.data().path() + ": the SFT dataset has no examples");
        }
        return examples;
    }

    static Path localOutput(RunConfig config) {
        try {
            Path out = new ModelSource(config.output(), 0).localPath().toAbsolutePath();
            Files.createDirectories(out);
            return out;
        } catch (UnsupportedOperationException e) {
            throw new UnsupportedOperationException(config.source() + ": output: runs write to a local folder for now, not "
                    + config.output());
        } catch (IOException e) {
            throw new IllegalStateException("cannot create " + config.output() + ": " + e.getMessage(), e);
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    /** The special token ids from the model's config.json. */
    record SpecialTokens(int bos, int eos, int pad) {
        static SpecialTokens read(Path modelDir) {
            try {
                JsonNode c = new ObjectMapper().readTree(modelDir.resolve("config.json").toFile());
                JsonNode eosNode = c.path("eos_token_id");
                int eos = eosNode.isArray() ? eosNode.get(0).asInt() : eosNode.asInt(-1);
                int bos = c.path("bos_token_id").asInt(-1);
                int pad = c.path("pad_token_id").asInt(eos);
                if (bos < 0 || eos < 0) {
                    throw new IllegalArgumentException(modelDir.resolve("config.json") + ": bos_token_id and eos_token_id are needed");
                }
                return new SpecialTokens(bos, eos, pad);
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read " + modelDir.resolve("config.json") + ": " + e.getMessage(), e);
            }
        }
    }
}
