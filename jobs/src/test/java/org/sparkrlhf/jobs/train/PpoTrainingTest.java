package org.sparkrlhf.jobs.train;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobEnd;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.jobs.algorithms.KlEstimator;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf train} on PPO configs, embedded (local[2], two data-parallel ranks), from the
 * tiny fixture models: with the fixture reward model (also the critic's start), and with the
 * arithmetic reward function and a critic made from the actor with a fresh value head. The tables'
 * rows are checked against the reward model run here, the KL penalty recomputed from the stored
 * logprobs, and GAE recomputed from the stored rewards and values. (That a retried job writes none
 * of its iterations twice is the tables' writer's property, run in {@link GrpoTrainingTest}.)
 */
class PpoTrainingTest {
    static final Path TINY_REWARD = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama-reward")
            .toAbsolutePath().normalize();
    static final int ITERATIONS = 2;
    static final int BATCH = 4;
    static final int MAX_NEW = 4;
    static final int EPOCHS = 2;
    static final int MINI_BATCHES = 2;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void rewardModelRunWritesItsTables() throws Exception {
        Path out = dir.resolve("run");
        // every call data parallel on both devices, given by hand: the planner's baseline counts the
        // epochs x mini-batches optimizer steps as slices of the batch (4 / 4 / dp2 < 1 sequence) and refuses it
        Path config = writeConfig(out, ITERATIONS, """
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [0, 1], dp: 2}
                    critic_inf: {devices: [0, 1], dp: 2}
                    actor_train: {devices: [0, 1], dp: 2}
                    critic_train: {devices: [0, 1], dp: 2}
                """, "", """
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                  reward: {path: %s}
                reward: {clip: 0.05}
                data: {path: %s, batch_size: %d, max_prompt_tokens: 16}
                ppo: {epochs: %d, mini_batches: %d, gamma: 0.9, lambda: 0.8, whiten_advantages: false,
                      kl: {type: adaptive, coef: 0.2, target: 0.5, horizon: 100, estimator: k3}}
                """.formatted(SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, TINY_REWARD, TINY_REWARD,
                prompts(), BATCH, EPOCHS, MINI_BATCHES));

        String first = train(config);
        for (int i = 1; i <= ITERATIONS; i++) {
            assertTrue(first.contains("iter " + i + "/" + ITERATIONS + " | reward "), first);
        }
        assertTrue(first.contains("reward_inf") && first.contains("critic_train"), first);
        assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("actor") || k.role().equals("ref")
                || k.role().equals("reward") || k.role().equals("critic")), ModelStore.get().keys().toString());

        SparkSession spark = tables();
        try (CpuBackend backend = new CpuBackend(); LlamaModel reward = LlamaModel.load(backend, TINY_REWARD)) {
            List<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out)).collectAsList();
            assertEquals(ITERATIONS * BATCH, rollouts.size(), "one row per prompt");
            Map<String, Map<Long, Double>> metrics = metrics(spark, out);
            for (Row r : rollouts) {
                long iteration = r.getAs("iteration");
                assertEquals((iteration - 1) * EPOCHS * MINI_BATCHES, (long) r.<Long>getAs("policy_version"));
                int[] prompt = ints(r, "prompt_tokens");
                int[] response = ints(r, "response_tokens");
                assertTrue(response.length >= 1 && response.length <= MAX_NEW);
                // the reward is the fixture reward model's score of prompt + response
                int[] seq = concat(prompt, response);
                float score = reward.scores(Batch.rightPadded(new int[][]{seq}, 0))[0];
                assertEquals(score, r.<Double>getAs("reward"), 1e-4, "reward of " + r.getAs("prompt_id"));
                // the critic starts as the reward model: iteration 1's values are its per-position values
                if (iteration == 1) {
                    float[] values = reward.values(Batch.rightPadded(new int[][]{seq}, 0));
                    float[] stored = floats(r, "values");
                    for (int j = 0; j < response.length; j++) {
                        assertEquals(values[prompt.length + j - 1], stored[j], 1e-4);
                    }
                }
                double coef = metrics.get("kl/coef").get(iteration);
                checkRewardsAndGae(r, coef, KlEstimator.K3, 0.05, 0.9, 0.8);
            }
            for (String name : List.of("reward/mean", "kl/k3", "kl/coef", "response_length/mean", "loss/actor",
                    "loss/critic", "clip_fraction/actor", "clip_fraction/critic", "tokens_per_second",
                    "seconds/actor_gen", "seconds/reward_inf", "seconds/ref_inf", "seconds/critic_inf",
                    "seconds/actor_train", "seconds/critic_train")) {
                assertEquals(Set.of(1L, 2L), metrics.get(name).keySet(), name);
            }
            // the policy that sampled iteration 1 is the reference, so its KL is 0, and the adaptive
            // controller, below its target, lowers the coefficient: 0.2 * (1 - 0.2 * 4 / 100)
            assertEquals(0.0, metrics.get("kl/k3").get(1L), 1e-6);
            assertEquals(0.2, metrics.get("kl/coef").get(1L), 1e-12);
            assertEquals(0.2 * (1 - 0.2 * BATCH / 100.0), metrics.get("kl/coef").get(2L), 1e-12);
            double meanReward = rollouts.stream().filter(r -> r.<Long>getAs("iteration") == 1)
                    .mapToDouble(r -> r.<Double>getAs("reward")).average().orElseThrow();
            assertEquals(meanReward, metrics.get("reward/mean").get(1L), 1e-6);
        } finally {
            spark.stop();
        }
    }

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void rewardFunctionRunWithAFreshValueHead() throws Exception {
        Path out = dir.resolve("run");
        Path config = writeConfig(out, """
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: %d, eval_size: 2, eval_every: 2, max_prompt_tokens: 16}
                ppo: {epochs: 1, mini_batches: 1, critic_lr: 1.0e-3}
                checkpoint: {every: 1, keep: 1}
                """.formatted(SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                prompts(), BATCH));

        String progress = train(config);
        assertTrue(progress.contains("iter 2/2 | reward ") && progress.contains("eval reward"), progress);

        SparkSession spark = tables();
        try {
            List<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out)).collectAsList();
            assertEquals(ITERATIONS * BATCH, rollouts.size());
            Map<Long, double[]> advantages = new HashMap<>();
            for (Row r : rollouts) {
                String detail = r.getAs("reward_detail");
                assertEquals(detail.equals("correct") ? 1.0 : 0.0, r.<Double>getAs("reward"));
                // returns - values are the advantages before whitening: GAE with the defaults gamma 1, lambda 0.95
                checkGae(r, floats(r, "token_rewards"), 1.0, 0.95);
                double[] sums = advantages.computeIfAbsent(r.getAs("iteration"), x -> new double[3]);
                for (float a : floats(r, "advantages")) {
                    sums[0] += a;
                    sums[1] += a * a;
                    sums[2]++;
                }
                // the default KL penalty: fixed, 0.05, k1
                checkRewardsAndGae(r, 0.05, KlEstimator.K1, 10.0, Double.NaN, Double.NaN);
            }
            // whitened advantages: mean 0 and unbiased variance 1 over each iteration's tokens
            for (double[] s : advantages.values()) {
                assertEquals(0.0, s[0] / s[2], 1e-4);
                assertEquals(1.0, (s[1] - s[0] * s[0] / s[2]) / (s[2] - 1), 1e-3);
            }
            Map<String, Map<Long, Double>> metrics = metrics(spark, out);
            assertEquals(Set.of(0L, 2L), metrics.get("eval/reward_mean").keySet());
            assertEquals(Set.of(1L, 2L), metrics.get("reward/correct_fraction").keySet());
        } finally {
            spark.stop();
        }
        // a checkpoint of iteration 1 with both trained models, and the final critic as a score model
        Path checkpoint = out.resolve("checkpoints").resolve("iter-00000001");
        assertTrue(Files.exists(checkpoint.resolve("actor").resolve("config.json")));
        assertTrue(Files.exists(checkpoint.resolve("critic").resolve("config.json")));
        try (CpuBackend backend = new CpuBackend(); LlamaModel critic = LlamaModel.load(backend, out.resolve("final-critic"))) {
            assertEquals(ModelConfig.Head.SCORE, critic.config().head());
            assertEquals(2, critic.config().numLayers());
        }
    }

    /**
     * The calls are placed by the plan: with ref_inf and critic_inf each on its own device (dp1) and
     * the critic trained on both (so it is moved between the two layouts every iteration), the
     * rollouts are the baseline plan's, and the two inference calls were both submitted as Spark
     * jobs before either finished (they ran at the same time).
     */
    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void manualPlacementsGiveTheBaselineRolloutsAndOverlapDisjointCalls() throws Exception {
        String models = """
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: %d, max_prompt_tokens: 16}
                ppo: {epochs: 1, mini_batches: 1, critic_lr: 1.0e-3}
                """.formatted(SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                prompts(), BATCH);
        Path baseline = dir.resolve("baseline");
        String first = train(writeConfig(baseline, ITERATIONS, "plan: {mode: baseline}", "", models));
        assertTrue(first.contains("iter 2/2 | reward "), first);

        Path placed = dir.resolve("placed");
        JobLog.EVENTS.clear();
        String second = train(writeConfig(placed, ITERATIONS, """
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [0]}
                    critic_inf: {devices: [1]}
                    actor_train: {devices: [0, 1], dp: 2}
                    critic_train: {devices: [0, 1], dp: 2}
                """, ", spark.extraListeners: " + JobLog.class.getName(), models));
        assertTrue(second.contains("iter 2/2 | reward "), second);
        // the copies moved to ref_inf's and critic_inf's devices leave the executors with the run
        assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("actor") || k.role().equals("ref")
                || k.role().equals("critic")), ModelStore.get().keys().toString());

        Map<String, Double> timeline = new HashMap<>();
        SparkSession spark = tables();
        try {
            for (Map.Entry<String, Map<Long, Double>> e : metrics(spark, placed).entrySet()) {
                if (e.getKey().startsWith("timeline/") && e.getValue().containsKey(1L)) {
                    timeline.put(e.getKey(), e.getValue().get(1L));
                }
            }
            Map<String, Row> expected = new HashMap<>();
            for (Row r : spark.read().format("delta").load(RunOutput.rolloutsPath(baseline)).collectAsList()) {
                expected.put(r.getAs("iteration") + "/" + r.getAs("prompt_id"), r);
            }
            List<Row> rows = spark.read().format("delta").load(RunOutput.rolloutsPath(placed)).collectAsList();
            assertEquals(ITERATIONS * BATCH, rows.size());
            for (Row r : rows) {
                String id = r.getAs("iteration") + "/" + r.getAs("prompt_id");
                Row e = expected.get(id);
                assertTrue(e != null, id);
                assertArrayEquals(ints(e, "response_tokens"), ints(r, "response_tokens"), id);
                assertEquals(e.<Double>getAs("reward"), r.<Double>getAs("reward"), 0.0, id);
                for (String column : List.of("logprobs", "ref_logprobs", "values", "returns")) {
                    assertArrayEquals(floats(e, column), floats(r, column), 1e-5f, id + " " + column);
                }
            }
        } finally {
            spark.stop();
        }

        // iteration 1's ref_inf and critic_inf ran, each on its own device ...
        List<String> events = List.copyOf(JobLog.EVENTS);
        assertTrue(events.contains("start ref_inf iteration 1 (ppo, dp1.tp1.pp1)")
                && events.contains("start critic_inf iteration 1 (ppo, dp1.tp1.pp1)"), events.toString());
        // ... at one time (the runtime's own timeline: Spark's job events can miss an overlap of calls this short)
        assertTrue(timeline.get("timeline/ref_inf/start") < timeline.get("timeline/critic_inf/end")
                && timeline.get("timeline/critic_inf/start") < timeline.get("timeline/ref_inf/end"), timeline.toString());
    }

    /** Spark job starts and ends by description, in the order the listener bus delivers them. */
    public static final class JobLog extends SparkListener {
        static final List<String> EVENTS = Collections.synchronizedList(new ArrayList<>());
        private final Map<Integer, String> descriptions = new ConcurrentHashMap<>();

        @Override
        public void onJobStart(SparkListenerJobStart start) {
            String description = start.properties() == null ? null
                    : start.properties().getProperty("spark.job.description");
            descriptions.put(start.jobId(), String.valueOf(description));
            EVENTS.add("start " + description);
        }

        @Override
        public void onJobEnd(SparkListenerJobEnd end) {
            EVENTS.add("end " + descriptions.get(end.jobId()));
        }
    }

    /**
     * token_rewards[t] = -coef * k(logprob, ref logprob) with the clipped reward added on the last
     * token; and, when gamma is given, returns - values follow GAE over those rewards.
     */
    private static void checkRewardsAndGae(Row r, double coef, KlEstimator estimator, double clip, double gamma,
                                           double lambda) {
        float[] logp = floats(r, "logprobs");
        float[] ref = floats(r, "ref_logprobs");
        float[] rewards = floats(r, "token_rewards");
        double score = Math.max(-clip, Math.min(clip, r.<Double>getAs("reward")));
        double kl = 0;
        for (int t = 0; t < logp.length; t++) {
            double penalty = -coef * estimator.value(logp[t], ref[t]);
            kl += estimator.value(logp[t], ref[t]);
            assertEquals(penalty + (t == logp.length - 1 ? score : 0), rewards[t], 1e-5, "token reward " + t);
        }
        assertEquals(kl / logp.length, r.<Double>getAs("kl"), 1e-5);
        if (!Double.isNaN(gamma)) {
            checkGae(r, rewards, gamma, lambda);
            // without whitening the advantages are GAE's
            float[] values = floats(r, "values");
            float[] returns = floats(r, "returns");
            float[] advantages = floats(r, "advantages");
            for (int t = 0; t < values.length; t++) {
                assertEquals(returns[t] - values[t], advantages[t], 1e-5);
            }
        }
    }

    /** returns[t] - values[t] = delta_t + gamma * lambda * (returns - values)[t + 1], delta_t = r_t + gamma V_{t+1} - V_t. */
    private static void checkGae(Row r, float[] rewards, double gamma, double lambda) {
        float[] values = floats(r, "values");
        float[] returns = floats(r, "returns");
        double next = 0;
        double nextValue = 0;
        for (int t = values.length - 1; t >= 0; t--) {
            double advantage = rewards[t] + gamma * nextValue - values[t] + gamma * lambda * next;
            assertEquals(advantage + values[t], returns[t], 1e-4, "return " + t);
            next = advantage;
            nextValue = values[t];
        }
    }

    private Path writeConfig(Path out, String models) throws Exception {
        return writeConfig(out, ITERATIONS, "plan: {mode: baseline}", "", models);
    }

    /** A run config on local[2]; {@code conf} adds Spark settings (a leading comma and entries). */
    private Path writeConfig(Path out, int iterations, String plan, String conf, String models) throws Exception {
        Path config = dir.resolve(out.getFileName() + ".yaml");
        Files.writeString(config, """
                name: ppo-test
                algorithm: ppo
                seed: 5
                iterations: %d
                output: %s
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                %s
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1,
                         spark.databricks.delta.snapshotPartitions: "1"%s}
                """.formatted(iterations, out, MAX_NEW, plan, conf) + models);
        return config;
    }

    private Path prompts() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Path file = dir.resolve("prompts.jsonl");
        Files.writeString(file, jsonl);
        return file;
    }

    private static SparkSession tables() {
        return TestSpark.deltaSession("PpoTrainingTest", 1);
    }

    /** The run's metrics table, read once: name -> iteration -> value (a name written twice for an iteration fails). */
    private static Map<String, Map<Long, Double>> metrics(SparkSession spark, Path out) {
        Map<String, Map<Long, Double>> metrics = new HashMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).collectAsList()) {
            Double previous = metrics.computeIfAbsent(r.getAs("name"), x -> new HashMap<>())
                    .put(r.getAs("iteration"), r.getAs("value"));
            assertEquals(null, previous, "metric " + r.getAs("name") + " written twice");
        }
        return metrics;
    }

    private static float[] floats(Row r, String column) {
        List<Float> list = r.getList(r.fieldIndex(column));
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = list.get(i);
        }
        return out;
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

    private static String train(Path config) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String progress = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
        return progress;
    }
}
