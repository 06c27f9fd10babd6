package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf train} on a GRPO config, embedded (local[2], two data-parallel ranks), from the
 * tiny fixture model: the rollouts and metrics tables get the right rows, and running the same
 * job again (a retry) writes none of its iterations twice.
 */
@Tag("end-to-end")
class GrpoTrainingTest {
    static final int ITERATIONS = 2;
    static final int BATCH = 2;
    static final int GROUP = 4;
    static final int MAX_NEW = 4;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void writesRolloutsAndMetricsOncePerIteration() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path out = dir.resolve("run");
        Path config = dir.resolve("grpo.yaml");
        Files.writeString(config, """
                name: grpo-test
                algorithm: grpo
                seed: 5
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: %d
                  eval_size: 2
                  eval_every: 2
                  eval_samples: 3
                  max_prompt_tokens: 16
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                dir.resolve("prompts.jsonl"), BATCH, MAX_NEW, GROUP));

        String first = train(config);
        for (int i = 1; i <= ITERATIONS; i++) {
            assertTrue(first.contains("iter " + i + "/" + ITERATIONS + " | reward "), first);
        }
        assertTrue(first.contains("eval reward"), first);
        // the run's replicas left the (driver's, in local mode) model store
        assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("ref")
                || (k.role().equals("actor") && k.layout().equals("dp2.tp1.pp1") && k.version() == ITERATIONS)),
                ModelStore.get().keys().toString());
        String retry = train(config);
        assertTrue(retry.contains("iter " + ITERATIONS + "/" + ITERATIONS), retry);

        SparkSession spark = TestSpark.deltaSession("GrpoTrainingTest", 1);
        try {
            Dataset<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out));
            assertEquals((long) ITERATIONS * BATCH * GROUP, rollouts.count(), "one row per sample, written once");
            assertEquals(rollouts.count(), rollouts.select("row_id").distinct().count(), "row_id is a key");
            // each prompt's samples are numbered 0..GROUP-1 within an iteration
            assertEquals(0, rollouts.groupBy("iteration", "prompt_id")
                    .agg(org.apache.spark.sql.functions.collect_set("sample").as("s"))
                    .filter("size(s) <> " + GROUP + " or array_max(s) <> " + (GROUP - 1)).count());
            Map<String, float[]> advantageSums = new HashMap<>();
            for (Row r : rollouts.collectAsList()) {
                long iteration = r.getAs("iteration");
                assertEquals(iteration - 1, (long) r.<Long>getAs("policy_version"), "one optimizer step per iteration");
                List<Integer> response = r.getList(r.fieldIndex("response_tokens"));
                assertTrue(response.size() >= 1 && response.size() <= MAX_NEW);
                assertEquals(response.size(), (int) r.<Integer>getAs("response_length"));
                assertEquals(response.size(), r.getList(r.fieldIndex("logprobs")).size());
                assertEquals(response.size(), r.getList(r.fieldIndex("ref_logprobs")).size());
                double reward = r.getAs("reward");
                String detail = r.getAs("reward_detail");
                assertEquals(detail.equals("correct") ? 1.0 : 0.0, reward);
                boolean stop = r.<String>getAs("finish_reason").equals("stop");
                assertTrue(stop || response.size() == MAX_NEW);
                List<Float> advantages = r.getList(r.fieldIndex("advantages"));
                String key = iteration + "/" + r.getAs("prompt_id");
                advantageSums.computeIfAbsent(key, x -> new float[2]);
                advantageSums.get(key)[0] += advantages.get(0);
                advantageSums.get(key)[1] += 1;
                // k3 KL is never negative
                assertTrue(r.<Double>getAs("kl") >= 0);
            }
            // group-normalised advantages sum to 0 within each group of GROUP samples of one prompt
            for (Map.Entry<String, float[]> e : advantageSums.entrySet()) {
                assertEquals(GROUP, e.getValue()[1], e.getKey());
                assertEquals(0.0, e.getValue()[0], 1e-3, e.getKey());
            }
            Dataset<Row> metrics = spark.read().format("delta").load(RunOutput.metricsPath(out));
            for (String name : List.of("reward/mean", "kl/k3", "response_length/mean", "loss/actor",
                    "seconds/actor_gen", "seconds/ref_inf", "seconds/actor_train")) {
                assertEquals(ITERATIONS, metrics.filter(metrics.col("name").equalTo(name)).count(), name);
            }
            // before training (iteration 0) and at the end; 3 sampled answers to each of 2 prompts: a multiple of 1/6
            assertEquals(List.of(0, ITERATIONS), metrics.filter("name = 'eval/reward_mean'").orderBy("iteration")
                    .collectAsList().stream().map(r -> ((Number) r.getAs("iteration")).intValue()).toList());
            for (Row r : metrics.filter("name = 'eval/reward_mean'").collectAsList()) {
                double sixths = r.<Double>getAs("value") * 6;
                assertEquals(Math.rint(sixths), sixths, 1e-9);
            }
            // the first iteration's KL is 0: the policy that sampled is the reference
            assertEquals(0.0, metrics.filter("name = 'kl/k3' and iteration = 1").first().<Double>getAs("value"), 1e-6);
            double meanReward = rollouts.filter("iteration = 1").agg(org.apache.spark.sql.functions.avg("reward"))
                    .first().getDouble(0);
            assertEquals(meanReward, metrics.filter("name = 'reward/mean' and iteration = 1").first()
                    .<Double>getAs("value"), 1e-9);
        } finally {
            spark.stop();
        }
        try (CpuBackend backend = new CpuBackend(); LlamaModel m = LlamaModel.load(backend, out.resolve("final"))) {
            assertEquals(2, m.config().numLayers());
        }
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
