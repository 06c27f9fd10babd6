package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.gpuexec.train.S3dTrainer;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Jobs killed in the middle and resumed with {@code --resume} (embedded, local[2]: two
 * data-parallel ranks) against the same jobs run without interruption, from the same seed: the
 * resumed GRPO run's rollouts table holds every (iteration, prompt, sample) exactly once, the
 * prompts and samples of every iteration are the uninterrupted run's, and the final weights are
 * bit-identical (the data order is a function of the seed and the position, the sampling seeds
 * of the iteration, and the checkpoint restores the weights and AdamW's moments and step exactly).
 *
 * <p>A kill is simulated in the driver: the progress stream, which the loop writes to after an
 * iteration's rollouts and metrics are appended and before its checkpoint, either throws, or
 * drops the actor's replicas from the (local-mode) executors' model store, as an executor lost
 * there; the job then fails in the checkpoint's save or in the next iteration's generation, before
 * that iteration writes anything. After each kill the store is cleared: the job's executors die
 * with it.
 *
 * <p>PPO is killed once, after an iteration's tables and before its checkpoint: the resumed run
 * reloads the actor and the critic (a fresh value head on the actor's decoder, trained) from the
 * checkpoint with their optimizer states, continues the adaptive KL coefficient, and ends with
 * the uninterrupted run's rollouts, coefficients and final weights.
 */
class ResumeTest {
    static final int ITERATIONS = 5;
    static final int BATCH = 2;
    static final int GROUP = 2;
    static final int MAX_NEW = 4;

    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("resume test", 2);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        ModelStore.get().clear();
    }

    /** What a simulated kill throws. */
    static final class Killed extends RuntimeException {
        Killed(String message) {
            super(message);
        }
    }

    /** A progress stream that runs {@code action} right after it prints iteration {@code iteration}'s line. */
    static PrintStream progress(ByteArrayOutputStream sink, int iteration, Runnable action) {
        return progress(sink, text -> {
            if (iteration > 0 && text.startsWith("iter " + iteration + "/")) {
                action.run();
            }
        });
    }

    /** A progress stream that hands every line it prints to {@code onLine}, right after printing it. */
    static PrintStream progress(ByteArrayOutputStream sink, java.util.function.Consumer<String> onLine) {
        return new PrintStream(sink, true, StandardCharsets.UTF_8) {
            @Override
            public void println(String x) {
                super.println(x);
                onLine.accept(x);
            }

            @Override
            public void println(Object x) {
                super.println(x);
                onLine.accept(String.valueOf(x));
            }

            @Override
            public PrintStream format(String format, Object... args) {
                super.format(format, args);
                onLine.accept(String.format(format, args));
                return this;
            }
        };
    }

    static Runnable throwKilled(int iteration) {
        return () -> {
            throw new Killed("killed after iteration " + iteration + "'s progress line");
        };
    }

    /** An executor loses the actor: every resident replica of it leaves the store. */
    static Runnable loseActor() {
        return () -> ModelStore.get().keys().stream().filter(k -> k.role().equals("actor"))
                .forEach(k -> ModelStore.get().remove(k));
    }

    /** Runs the config, printing what it printed; returns the progress text. */
    static String train(RunConfig config, boolean resume, int killAt, Runnable kill) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, config, progress(sink, killAt, kill), resume);
        } finally {
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    /** Runs the config expecting it to die; the executors die with it. */
    static void trainAndDie(RunConfig config, boolean resume, int killAt, Runnable kill) {
        try {
            assertThrows(Exception.class, () -> train(config, resume, killAt, kill));
        } finally {
            ModelStore.get().clear();
        }
    }

    private Path prompts() throws Exception {
        return prompts(dir);
    }

    /** Nine arithmetic prompts with their answers, in {@code dir}. */
    static Path prompts(Path dir) throws Exception {
        Path prompts = dir.resolve("prompts.jsonl");
        if (!Files.exists(prompts)) {
            StringBuilder jsonl = new StringBuilder();
            for (int a = 1; a <= 3; a++) {
                for (int b = 1; b <= 3; b++) {
                    jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                            .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
                }
            }
            Files.writeString(prompts, jsonl);
        }
        return prompts;
    }

    private RunConfig grpoConfig(String name, Path out) throws Exception {
        return grpoConfig(dir, name, out, 0);
    }

    /** The GRPO run of these tests, its config written in {@code dir}, restarting at most {@code maxRestarts} times. */
    static RunConfig grpoConfig(Path dir, String name, Path out, int maxRestarts) throws Exception {
        return new RunConfigReader(new Configuration()).read(grpoConfig(dir, name, out, maxRestarts, "master: local[2]",
                "{mode: baseline}").toString());
    }

    /**
     * {@link #grpoConfig(Path, String, Path, int)}'s file, with {@code spark} as its spark section's lines
     * and {@code plan} as its plan section (flow style).
     */
    static Path grpoConfig(Path dir, String name, Path out, int maxRestarts, String spark, String plan) throws Exception {
        Path prompts = prompts(dir);
        Path config = dir.resolve(name + "-" + out.getFileName() + ".yaml");
        Files.writeString(config, """
                name: %s
                algorithm: grpo
                seed: 11
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: %d
                  max_prompt_tokens: 16
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2, mini_batches: 2}
                checkpoint: {every: 2, keep: 2}
                recovery: {max_restarts: %d}
                plan: %s
                spark:
                  %s
                """.formatted(name, ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, prompts,
                BATCH, MAX_NEW, GROUP, maxRestarts, plan, spark.strip().replace("\n", "\n  ")));
        return config;
    }

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void grpoKilledMidRunAndResumedWritesEveryRolloutOnceAndEndsWithTheSameWeights() throws Exception {
        Path straight = dir.resolve("straight");
        Path killed = dir.resolve("killed");
        ModelStore.get().clear();
        train(grpoConfig("grpo-resume", straight), false, 0, null);

        RunConfig config = grpoConfig("grpo-resume", killed);
        RunCheckpoints checkpoints = new RunCheckpoints(killed.toString(), new Configuration());
        // 1. iteration 2's tables are written, then the actor is lost: checkpoint 2 is cut short
        trainAndDie(config, false, 2, loseActor());
        assertTrue(checkpoints.newestComplete().isEmpty(), "a checkpoint cut short is not complete");
        try (var listing = Files.list(killed.resolve("checkpoints"))) {
            assertEquals(1, listing.filter(p -> p.getFileName().toString().startsWith("iter-00000002.partial-")).count());
        }
        // 2. --resume finds no complete checkpoint: a fresh start, which writes checkpoint 2; after
        //    iteration 3 the actor is lost, and iteration 4 fails in actor_gen before writing anything
        String fresh = recordTrain(config, 3, loseActor());
        assertTrue(fresh.contains("resume: no complete checkpoint"), fresh);
        assertEquals(2, checkpoints.newestComplete().orElseThrow().state().iteration());
        assertEquals(3, lastIteration(killed));
        // 3. --resume from checkpoint 2: iteration 3 again (its rows are in the table already), then
        //    iteration 4, killed after its tables and before checkpoint 4
        String second = recordTrain(config, 4, throwKilled(4));
        assertTrue(second.contains("resume: from") && second.contains("iteration 2 done"), second);
        assertEquals(2, checkpoints.newestComplete().orElseThrow().state().iteration());
        assertEquals(4, lastIteration(killed));
        // without --resume, an output holding checkpoints is refused; another run's name or seed too
        assertThrows(IllegalArgumentException.class, () -> checkpoints.resume(config, 9, false, System.out));
        IllegalArgumentException renamed = assertThrows(IllegalArgumentException.class,
                () -> checkpoints.resume(grpoConfig("another-run", killed), 9, true, System.out));
        assertTrue(renamed.getMessage().contains("'grpo-resume'"), renamed.getMessage());
        // 4. --resume from checkpoint 2 again, to the end
        String last = train(config, true, 0, null);
        assertTrue(last.contains("iteration 2 done") && last.contains("iter 5/5"), last);

        // every iteration's rows once: the uninterrupted run's prompts and samples
        Map<String, List<String>> expected = rollouts(straight);
        Map<String, List<String>> actual = rollouts(killed);
        assertEquals(expected.keySet(), actual.keySet());
        for (int i = 1; i <= ITERATIONS; i++) {
            List<String> rows = actual.get(Integer.toString(i));
            assertEquals(BATCH * GROUP, rows.size(), "iteration " + i + " " + rows);
            assertEquals(expected.get(Integer.toString(i)), rows, "iteration " + i);
        }
        assertFinalWeightsEqual(straight, killed);
        // checkpoint 4 holds the actor's optimizer state at its version (one step per mini-batch)
        RunCheckpoints.Checkpoint cp = checkpoints.newestComplete().orElseThrow();
        assertEquals(4, cp.state().iteration());
        assertEquals(8L, cp.state().version("actor"));
        SafeTensorsFile optimizer = SafeTensorsFile.open(cp.localDir().resolve("actor").resolve(OptimizerState.FILE));
        assertEquals("8", optimizer.metadata().get("step"));
        assertEquals(8, cp.state().dataOffset(), "4 iterations of 2 prompts out of 9");
    }

    /** The GRPO run with S3D speculative decoding: sampled (the speculative-sampling rule), its draft trained 2 steps an iteration. */
    private RunConfig s3dConfig(Path out) throws Exception {
        Path config = dir.resolve("s3d-" + out.getFileName() + ".yaml");
        Files.writeString(config, """
                name: s3d-resume
                algorithm: grpo
                seed: 17
                iterations: 3
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: %d
                  max_prompt_tokens: 16
                generation:
                  max_new_tokens: 6
                  temperature: 1.0
                  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 2, train_steps: 2, train_lr: 0.01}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2}
                checkpoint: {every: 1, keep: 1}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                """.formatted(out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, prompts(), BATCH, GROUP));
        return new RunConfigReader(new Configuration()).read(config.toString());
    }

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void s3dRunKilledAfterAnIterationResumesTheDraftAndItsOptimizerExactly() throws Exception {
        Path straight = dir.resolve("s3d-straight");
        Path killed = dir.resolve("s3d-killed");
        ModelStore.get().clear();
        train(s3dConfig(straight), false, 0, null);
        ModelStore.get().clear();

        RunConfig config = s3dConfig(killed);
        // iteration 2's tables are written, then the job dies before checkpoint 2
        trainAndDie(config, false, 2, throwKilled(2));
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(killed.toString(), new Configuration()).newestComplete()
                .orElseThrow();
        assertEquals(1, cp.state().iteration());
        // the draft's AdamW after one iteration's 2 steps travels with the checkpoint's actor
        SafeTensorsFile draftOptimizer = SafeTensorsFile.open(cp.localDir().resolve("actor").resolve(S3dTrainer.OPTIMIZER));
        assertEquals("2", draftOptimizer.metadata().get("step"));

        String resumed = train(config, true, 0, null);
        ModelStore.get().clear();
        assertTrue(resumed.contains("iteration 1 done") && resumed.contains("AdamW after 2 steps")
                && !resumed.contains("iter 1/3") && resumed.contains("iter 3/3"), resumed);
        // the rollouts (drafted by the resumed draft), the draft's losses, the weights and the draft are the uninterrupted run's
        assertEquals(rollouts(straight), rollouts(killed));
        assertEquals(figures(straight, "s3d/train_loss"), figures(killed, "s3d/train_loss"));
        assertEquals(figures(straight, "s3d/acceptance"), figures(killed, "s3d/acceptance"));
        assertEquals(3, figures(killed, "s3d/train_loss").size());
        assertFinalWeightsEqual(straight, killed);
        S3dDraft.Saved a = S3dDraft.read(straight.resolve("final")), b = S3dDraft.read(killed.resolve("final"));
        assertArrayEquals(a.values(), b.values());
        S3dTrainer.Moments ma = S3dTrainer.read(newestActor(straight).resolve(S3dTrainer.OPTIMIZER), 2, a.hidden());
        S3dTrainer.Moments mb = S3dTrainer.read(newestActor(killed).resolve(S3dTrainer.OPTIMIZER), 2, b.hidden());
        int saved = new RunCheckpoints(straight.toString(), new Configuration()).newestComplete().orElseThrow().state()
                .iteration();
        assertTrue(saved >= 2, "a checkpoint after iteration " + saved);
        assertEquals(2 * saved, ma.steps(), saved + " iterations of 2 steps: the moments persist across iterations");
        assertEquals(ma.steps(), mb.steps());
        assertArrayEquals(ma.first(), mb.first());
        assertArrayEquals(ma.second(), mb.second());
    }

    /** The actor folder of an output's newest complete checkpoint. */
    private static Path newestActor(Path out) {
        return new RunCheckpoints(out.toString(), new Configuration()).newestComplete().orElseThrow().localDir()
                .resolve("actor");
    }

    /** iteration -> a metric's value. */
    private static Map<Long, Double> figures(Path out, String name) {
        Map<Long, Double> byIteration = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).filter("name = '" + name + "'")
                .collectAsList()) {
            assertEquals(null, byIteration.put(r.<Long>getAs("iteration"), r.<Double>getAs("value")));
        }
        return byIteration;
    }

    private static String recordTrain(RunConfig config, int killAt, Runnable kill) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            assertThrows(Exception.class, () -> TrainCommand.train(spark, config, progress(sink, killAt, kill), true));
        } finally {
            ModelStore.get().clear();
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    private static long lastIteration(Path out) {
        return org.sparkrlhf.datasets.tables.IterationTable.rollouts(spark, RunOutput.rolloutsPath(out))
                .lastWrittenIteration("grpo-resume").orElseThrow();
    }

    /** iteration -> its rows (prompt, policy version, response tokens, reward), sorted. */
    private static Map<String, List<String>> rollouts(Path out) {
        return rollouts(spark, out);
    }

    /** iteration -> its rows (prompt, policy version, response tokens, reward), sorted. */
    static Map<String, List<String>> rollouts(SparkSession spark, Path out) {
        Map<String, List<String>> byIteration = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.rolloutsPath(out)).collectAsList()) {
            String row = r.getAs("prompt_id") + " v" + r.getAs("policy_version") + " "
                    + r.getList(r.fieldIndex("response_tokens")) + " reward " + r.getAs("reward");
            byIteration.computeIfAbsent(Long.toString(r.<Long>getAs("iteration")), k -> new ArrayList<>()).add(row);
        }
        byIteration.values().forEach(rows -> rows.sort(String::compareTo));
        return byIteration;
    }

    static void assertFinalWeightsEqual(Path a, Path b) {
        assertWeightsEqual(a.resolve("final"), b.resolve("final"));
    }

    private static void assertWeightsEqual(Path a, Path b) {
        CheckpointWeights wa = CheckpointWeights.open(a);
        CheckpointWeights wb = CheckpointWeights.open(b);
        assertEquals(wa.names(), wb.names());
        for (String name : wa.names()) {
            int[] shape = wa.entry(name).shape();
            assertArrayEquals(wa.floats(name, shape), wb.floats(name, shape), name);
        }
    }

    private RunConfig ppoConfig(Path out) throws Exception {
        Path config = dir.resolve("ppo-" + out.getFileName() + ".yaml");
        Files.writeString(config, """
                name: ppo-resume
                algorithm: ppo
                seed: 13
                iterations: 3
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: %d
                  max_prompt_tokens: 16
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                ppo: {epochs: 1, mini_batches: 1, critic_lr: 1.0e-3,
                      kl: {type: adaptive, coef: 0.2, target: 0.5, horizon: 100, estimator: k3}}
                checkpoint: {every: 1, keep: 1}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                """.formatted(out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                prompts(), BATCH, MAX_NEW));
        return new RunConfigReader(new Configuration()).read(config.toString());
    }

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void ppoKilledAfterAnIterationResumesActorCriticAndKlCoefficientFromItsCheckpoint() throws Exception {
        Path straight = dir.resolve("ppo-straight");
        Path killed = dir.resolve("ppo-killed");
        ModelStore.get().clear();
        train(ppoConfig(straight), false, 0, null);
        ModelStore.get().clear();

        RunConfig config = ppoConfig(killed);
        // iteration 2's tables are written, then the job dies before checkpoint 2
        trainAndDie(config, false, 2, throwKilled(2));
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(killed.toString(), new Configuration()).newestComplete()
                .orElseThrow();
        assertEquals(1, cp.state().iteration());
        assertEquals(1, cp.state().rngCounter());
        assertEquals(BATCH, cp.state().dataOffset());
        // one optimizer step per model and iteration (1 epoch x 1 mini-batch), each model with its AdamW state
        assertEquals(Map.of("actor", 1L, "critic", 1L), cp.state().modelVersions());
        for (String role : List.of("actor", "critic")) {
            SafeTensorsFile optimizer = SafeTensorsFile.open(cp.localDir().resolve(role).resolve(OptimizerState.FILE));
            assertEquals("1", optimizer.metadata().get("step"), role);
        }
        try (CpuBackend backend = new CpuBackend();
             LlamaModel critic = LlamaModel.load(backend, cp.localDir().resolve("critic"))) {
            assertEquals(ModelConfig.Head.SCORE, critic.config().head());
        }
        // iteration 1 samples from the reference policy (KL 0, below the target): the adaptive
        // controller lowers the coefficient by the clipped error -0.2 over 2 of its 100 horizon samples
        assertEquals(0.2 * (1.0 + -0.2 * BATCH / 100), cp.state().klCoef(), 1e-15);

        String resumed = train(config, true, 0, null);
        ModelStore.get().clear();
        assertTrue(resumed.contains("iteration 1 done") && !resumed.contains("iter 1/3") && resumed.contains("iter 2/3")
                && resumed.contains("iter 3/3"), resumed);

        Map<String, List<String>> expected = rollouts(straight);
        Map<String, List<String>> actual = rollouts(killed);
        assertEquals(Set.of("1", "2", "3"), actual.keySet());
        for (int i = 1; i <= 3; i++) {
            assertEquals(BATCH, actual.get(Integer.toString(i)).size(), "iteration " + i);
            assertEquals(expected.get(Integer.toString(i)), actual.get(Integer.toString(i)), "iteration " + i);
        }
        assertEquals(klCoefs(straight), klCoefs(killed));
        assertEquals(cp.state().klCoef(), klCoefs(killed).get(2L), "iteration 2 uses the checkpoint's coefficient");
        assertFinalWeightsEqual(straight, killed);
        assertWeightsEqual(straight.resolve("final-critic"), killed.resolve("final-critic"));
    }

    /** iteration -> the KL coefficient the iteration used. */
    private static Map<Long, Double> klCoefs(Path out) {
        Map<Long, Double> coefs = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).filter("name = 'kl/coef'")
                .collectAsList()) {
            assertEquals(null, coefs.put(r.<Long>getAs("iteration"), r.<Double>getAs("value")));
        }
        return coefs;
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void sftKilledInAnIterationAndResumedEndsWithTheSameWeightsAndLosses() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 4; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"answer\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("sft.jsonl"), jsonl);
        Path straight = dir.resolve("sft-straight");
        Path killed = dir.resolve("sft-killed");
        List<RunConfig> configs = new ArrayList<>();
        for (Path out : List.of(straight, killed)) {
            Path yaml = dir.resolve(out.getFileName() + ".yaml");
            Files.writeString(yaml, """
                    name: sft-resume
                    algorithm: sft
                    seed: 4
                    iterations: 3
                    output: %s
                    models:
                      actor: {path: %s}
                    data:
                      path: %s
                      batch_size: 5
                      max_prompt_tokens: 16
                    generation: {max_new_tokens: 8}
                    optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                    checkpoint: {every: 1, keep: 1}
                    plan: {mode: baseline}
                    spark:
                      master: local[2]
                    """.formatted(out, SftTrainingTest.TINY_LLAMA, dir.resolve("sft.jsonl")));
            configs.add(new RunConfigReader(new Configuration()).read(yaml.toString()));
        }
        ModelStore.get().clear();
        train(configs.get(0), false, 0, null);
        ModelStore.get().clear();
        // killed in iteration 2 after its step, before its metrics and checkpoint (SFT prints first)
        trainAndDie(configs.get(1), false, 2, throwKilled(2));
        String resumed = train(configs.get(1), true, 0, null);
        ModelStore.get().clear();
        assertTrue(resumed.contains("iteration 1 done") && !resumed.contains("iter 1/3") && resumed.contains("iter 2/3")
                && resumed.contains("iter 3/3"), resumed);
        assertFinalWeightsEqual(straight, killed);
        List<Row> a = spark.read().format("delta").load(RunOutput.metricsPath(straight))
                .filter("name = 'loss/actor'").orderBy("iteration").collectAsList();
        List<Row> b = spark.read().format("delta").load(RunOutput.metricsPath(killed))
                .filter("name = 'loss/actor'").orderBy("iteration").collectAsList();
        assertEquals(3, b.size());
        for (int i = 0; i < 3; i++) {
            assertEquals(a.get(i).<Double>getAs("value"), b.get(i).<Double>getAs("value"), "loss of iteration " + (i + 1));
        }
    }
}
