package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tasks.ArithmeticReward;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.algorithms.HeldOutReward;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf train} on a GRPO config whose rewards come from the fixture reward model
 * (embedded, local[2]), with reward_inf and ref_inf each on its own device: every rollout's
 * reward is the reward model's score of its prompt + response recomputed here, the advantages are
 * those rewards normalised within each prompt's group, the two inference calls ran at the same
 * time, the held-out evaluation before training is the reward model's score of the initial
 * actor's greedy answers, and {@code --resume} from the iteration-1 checkpoint (the reward model
 * reloaded from its folder) ends with the same weights as the uninterrupted run.
 */
class GrpoRewardModelTest {
    static final int ITERATIONS = 2;
    static final int BATCH = 2;
    static final int GROUP = 4;
    static final int MAX_NEW = 4;
    static final int EVAL = 2;
    static final double CLIP = 10.0;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void rewardsAreTheRewardModelsScoresNormalisedWithinGroups() throws Exception {
        Path out = dir.resolve("run");
        RunConfig config = new RunConfigReader(new Configuration()).read(writeConfig(out).toString());
        // one Spark application for both runs and the tables' checks (each start costs seconds)
        SparkSession spark = TrainCommand.start(config);
        try {
            check(spark, config, out);
        } finally {
            spark.stop();
        }
    }

    private void check(SparkSession spark, RunConfig config, Path out) throws Exception {
        PpoTrainingTest.JobLog.EVENTS.clear();
        String progress = train(spark, config, false);
        for (int i = 1; i <= ITERATIONS; i++) {
            assertTrue(progress.contains("iter " + i + "/" + ITERATIONS + " | reward "), progress);
        }
        assertTrue(progress.contains("rewards from the reward model") && progress.contains("| reward_inf ")
                && progress.contains("eval reward"), progress);
        assertFalse(progress.contains("| correct "), "a reward model gives no verdicts: " + progress);
        assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("actor") || k.role().equals("ref")
                || k.role().equals("reward")), ModelStore.get().keys().toString());

        // iteration 1's reward_inf and ref_inf ran on devices 0 and 1 ...
        List<String> events = List.copyOf(PpoTrainingTest.JobLog.EVENTS);
        assertTrue(events.contains("start reward_inf iteration 1 (grpo, dp1.tp1.pp1)")
                && events.contains("start ref_inf iteration 1 (grpo, dp1.tp1.pp1)"), events.toString());
        // ... at one time (the runtime's own timeline: Spark's job events can miss an overlap of calls this short)
        Map<String, Map<Long, Double>> timeline = metrics(spark, out);
        assertTrue(timeline.get("timeline/reward_inf/start").get(1L) < timeline.get("timeline/ref_inf/end").get(1L)
                && timeline.get("timeline/ref_inf/start").get(1L) < timeline.get("timeline/reward_inf/end").get(1L),
                timeline.toString());

        Path straightFinal = dir.resolve("straight-final");
        copyTree(out.resolve("final"), straightFinal);
        try (CpuBackend backend = new CpuBackend();
             LlamaModel reward = LlamaModel.load(backend, PpoTrainingTest.TINY_REWARD);
             LlamaModel actor = LlamaModel.load(backend, SftTrainingTest.TINY_LLAMA)) {
            List<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out)).collectAsList();
            assertEquals(ITERATIONS * BATCH * GROUP, rollouts.size(), "one row per sample");
            Map<String, List<double[]>> groups = new TreeMap<>();
            for (Row r : rollouts) {
                int[] prompt = ints(r, "prompt_tokens");
                int[] response = ints(r, "response_tokens");
                assertTrue(response.length >= 1 && response.length <= MAX_NEW);
                // the reward is the reward model's score of prompt + response, clipped
                float score = reward.scores(Batch.rightPadded(new int[][]{concat(prompt, response)}, 0))[0];
                double stored = r.<Double>getAs("reward");
                assertEquals(Math.max(-CLIP, Math.min(CLIP, score)), stored, 1e-5, "reward of " + r.getAs("prompt_id"));
                assertNull(r.getAs("reward_detail"));
                List<Float> advantages = r.getList(r.fieldIndex("advantages"));
                for (float a : advantages) {
                    assertEquals(advantages.get(0), a, 0.0f, "one advantage on every token");
                }
                groups.computeIfAbsent(r.getAs("iteration") + "/" + r.getAs("prompt_id"), x -> new ArrayList<>())
                        .add(new double[]{stored, advantages.get(0)});
            }
            // each prompt's GROUP samples: advantage = (reward - group mean) / (unbiased group std + 1e-4)
            assertEquals(ITERATIONS * BATCH, groups.size(), groups.keySet().toString());
            boolean spread = false;
            for (Map.Entry<String, List<double[]>> e : groups.entrySet()) {
                List<double[]> g = e.getValue();
                assertEquals(GROUP, g.size(), e.getKey());
                double mean = g.stream().mapToDouble(x -> x[0]).sum() / GROUP;
                double squares = g.stream().mapToDouble(x -> (x[0] - mean) * (x[0] - mean)).sum();
                double std = Math.sqrt(squares / (GROUP - 1));
                spread |= std > 1e-3;
                for (double[] x : g) {
                    double expected = (x[0] - mean) / (std + 1e-4);
                    assertEquals(expected, x[1], 1e-4 * Math.max(1, Math.abs(expected)), e.getKey());
                }
            }
            assertTrue(spread, "some group's rewards differ, so some advantages are not 0");

            Map<String, Map<Long, Double>> metrics = metrics(spark, out);
            for (String name : List.of("reward/mean", "kl/k3", "loss/actor", "seconds/actor_gen",
                    "seconds/reward_inf", "seconds/ref_inf", "seconds/actor_train")) {
                assertEquals(Set.of(1L, 2L), metrics.get(name).keySet(), name);
            }
            assertFalse(metrics.containsKey("reward/correct_fraction"), metrics.keySet().toString());
            double meanReward = rollouts.stream().filter(r -> r.<Long>getAs("iteration") == 1)
                    .mapToDouble(r -> r.<Double>getAs("reward")).average().orElseThrow();
            assertEquals(meanReward, metrics.get("reward/mean").get(1L), 1e-6);

            // before training, the held-out prompts (one per generating rank) answered greedily by the
            // initial actor and scored by the reward model
            assertEquals(Set.of(0L, 2L), metrics.get("eval/reward_mean").keySet());
            SpecialTokens special = SpecialTokens.read(SftTrainingTest.TINY_LLAMA);
            PromptSet prompts = PromptSet.read(spark, config, SftTrainingTest.TINY_LLAMA, special.bos(), out.toString());
            assertEquals(EVAL, prompts.heldOutTokens().size());
            double sum = 0;
            try (Generator generator = new Generator(actor)) {
                for (int[] prompt : prompts.heldOutTokens()) {
                    GenerationResult g = generator.generate(new int[][]{prompt},
                            Generator.Options.greedy(MAX_NEW, new int[]{special.eos()}, special.pad()));
                    float score = reward.scores(Batch.rightPadded(new int[][]{concat(prompt, g.tokens()[0])}, 0))[0];
                    sum += Math.max(-CLIP, Math.min(CLIP, score));
                }
            }
            assertEquals(sum / EVAL, metrics.get("eval/reward_mean").get(0L), 1e-5);
        }

        // --resume from the checkpoint of iteration 1: iteration 2 again, the reward model reloaded from
        // its folder (the run released it), to the uninterrupted run's weights; no row is written twice
        String resumed = train(spark, config, true);
        assertTrue(resumed.contains("resume: from") && resumed.contains("iter 2/2 | reward ")
                && !resumed.contains("iter 1/2"), resumed);
        assertWeightsEqual(straightFinal, out.resolve("final"));
        assertEquals(ITERATIONS * BATCH * GROUP, spark.read().format("delta").load(RunOutput.rolloutsPath(out)).count());
    }

    /**
     * eval/reward_mean: with a reward model, the held-out answers of a task are checked by the task's
     * reward function, of a dataset scored by the reward model (null); a reward function scores both.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void heldOutAnswersAreScoredByTheTasksRewardFunctionWhenThereIsOne() throws Exception {
        Files.writeString(dir.resolve("p.jsonl"), "{\"id\": \"a\", \"prompt\": \"1+1=\"}\n");
        String models = "models: {actor: {path: %s}, ref: {path: %s}, reward: {path: %s}}".formatted(
                SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, PpoTrainingTest.TINY_REWARD);
        String function = "models: {actor: {path: %s}, ref: {path: %s}}\nreward: {function: arithmetic}".formatted(
                SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA);
        String task = "data: {task: arithmetic}";
        String dataset = "data: {path: " + dir.resolve("p.jsonl") + "}";
        assertTrue(HeldOutReward.scoringFunction(smallConfig(models, task)) instanceof ArithmeticReward);
        assertNull(HeldOutReward.scoringFunction(smallConfig(models, dataset)));
        assertTrue(HeldOutReward.scoringFunction(smallConfig(function, task)) instanceof ArithmeticReward);
        assertTrue(HeldOutReward.scoringFunction(smallConfig(function, dataset)) instanceof ArithmeticReward);
    }

    private RunConfig smallConfig(String models, String data) throws Exception {
        Path f = dir.resolve("small.yaml");
        Files.writeString(f, "algorithm: grpo\noutput: " + dir.resolve("out") + "\n" + models + "\n" + data + "\n");
        return new RunConfigReader(new Configuration()).read(f.toString());
    }

    private Path writeConfig(Path out) throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                // no reference answers: a reward model needs none
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\"}\n");
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path config = dir.resolve("grpo-rm.yaml");
        Files.writeString(config, """
                name: grpo-rm-test
                algorithm: grpo
                seed: 5
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  reward: {path: %s}
                reward: {clip: %s}
                data:
                  path: %s
                  batch_size: %d
                  eval_size: %d
                  eval_every: 2
                  max_prompt_tokens: 16
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2}
                checkpoint: {every: 1, keep: 1}
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0]}
                    ref_inf: {devices: [1]}
                    actor_train: {devices: [0, 1], dp: 2}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1,
                         spark.databricks.delta.snapshotPartitions: "1", spark.extraListeners: %s}
                """.formatted(ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                PpoTrainingTest.TINY_REWARD, CLIP, dir.resolve("prompts.jsonl"), BATCH, EVAL, MAX_NEW, GROUP,
                PpoTrainingTest.JobLog.class.getName()));
        return config;
    }

    /** Runs the config on {@code spark}, printing what it printed; returns the progress text. */
    private static String train(SparkSession spark, RunConfig config, boolean resume) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, config, new PrintStream(sink, true, StandardCharsets.UTF_8), resume);
        } finally {
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    /** The run's metrics table: name -> iteration -> value. */
    private static Map<String, Map<Long, Double>> metrics(SparkSession spark, Path out) {
        Map<String, Map<Long, Double>> metrics = new HashMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).collectAsList()) {
            Double previous = metrics.computeIfAbsent(r.getAs("name"), x -> new HashMap<>())
                    .put(r.getAs("iteration"), r.getAs("value"));
            assertNull(previous, "metric " + r.getAs("name") + " written twice");
        }
        return metrics;
    }

    /** Two HF folders hold the same tensors, bit for bit. */
    private static void assertWeightsEqual(Path expected, Path actual) {
        CheckpointWeights a = CheckpointWeights.open(expected);
        CheckpointWeights b = CheckpointWeights.open(actual);
        assertEquals(a.names(), b.names());
        for (String name : a.names()) {
            int[] shape = a.entry(name).shape();
            assertArrayEquals(a.floats(name, shape), b.floats(name, shape), name);
        }
    }

    private static void copyTree(Path from, Path to) throws Exception {
        Files.createDirectories(to);
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
    }

    private static int[] ints(Row r, String column) {
        List<Integer> list = r.getList(r.fieldIndex(column));
        return list.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = new int[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
