package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PPO embedded (local[2]) with {@code critic: {trainable: false}}: the critic, the fixture reward
 * model, only gives values. The run has no critic_train call, every iteration's values are the
 * fixture's own per-position values (it never changes), the actor trains, and neither a checkpoint
 * nor the final models hold a critic.
 */
class FrozenCriticPpoTest {
    static final Path TINY_REWARD = PpoTrainingTest.TINY_REWARD;
    static final int BATCH = 4;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void aFrozenCriticOnlyGivesValues() throws Exception {
        Path out = dir.resolve("run");
        Path prompts = dir.resolve("prompts.jsonl");
        Files.writeString(prompts, """
                {"id": "q1", "prompt": "1+2=", "reference": "3"}
                {"id": "q2", "prompt": "2+2=", "reference": "4"}
                {"id": "q3", "prompt": "3+1=", "reference": "4"}
                {"id": "q4", "prompt": "2+3=", "reference": "5"}
                """);
        Path config = dir.resolve("run.yaml");
        Files.writeString(config, """
                name: frozen-critic
                algorithm: ppo
                seed: 5
                iterations: 2
                output: %s
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                plan: {mode: baseline}
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s, trainable: false}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: %d, max_prompt_tokens: 16}
                ppo: {epochs: 1, mini_batches: 1}
                checkpoint: {every: 1, keep: 2}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1,
                         spark.databricks.delta.snapshotPartitions: "1"}
                """.formatted(out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, TINY_REWARD, prompts, BATCH));

        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String progress = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
        assertTrue(progress.contains("iter 2/2 | reward ") && progress.contains("critic frozen"), progress);
        assertTrue(progress.contains("critic_inf") && !progress.contains("critic_train"), progress);
        assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("critic")),
                ModelStore.get().keys().toString());

        SparkSession spark = TestSpark.deltaSession("FrozenCriticPpoTest", 1);
        try (CpuBackend backend = new CpuBackend(); LlamaModel critic = LlamaModel.load(backend, TINY_REWARD)) {
            List<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out)).collectAsList();
            assertEquals(2 * BATCH, rollouts.size());
            Set<Long> versions = new HashSet<>();
            for (Row r : rollouts) {
                versions.add(r.<Long>getAs("policy_version"));
                int[] prompt = ints(r, "prompt_tokens");
                int[] response = ints(r, "response_tokens");
                int[] seq = new int[prompt.length + response.length];
                System.arraycopy(prompt, 0, seq, 0, prompt.length);
                System.arraycopy(response, 0, seq, prompt.length, response.length);
                // in both iterations the values are the untouched value model's
                float[] values = critic.values(Batch.rightPadded(new int[][]{seq}, 0));
                List<Float> stored = r.getList(r.fieldIndex("values"));
                assertEquals(response.length, stored.size());
                for (int j = 0; j < response.length; j++) {
                    assertEquals(values[prompt.length + j - 1], stored.get(j), 1e-4,
                            "iteration " + r.getAs("iteration") + " " + r.getAs("prompt_id") + " value " + j);
                }
            }
            assertEquals(Set.of(0L, 1L), versions, "the actor trains: iteration 2 samples from version 1");
            Set<String> names = new HashSet<>();
            for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).collectAsList()) {
                names.add(r.getAs("name"));
            }
            assertTrue(names.contains("loss/actor") && names.contains("value/mean"), names.toString());
            assertFalse(names.contains("loss/critic") || names.contains("seconds/critic_train"), names.toString());
        } finally {
            spark.stop();
        }
        Path checkpoint = out.resolve("checkpoints").resolve("iter-00000001");
        assertTrue(Files.exists(checkpoint.resolve("actor").resolve("config.json")));
        assertFalse(Files.exists(checkpoint.resolve("critic")));
        assertFalse(Files.exists(out.resolve("final-critic")));
    }

    private static int[] ints(Row r, String column) {
        List<Integer> list = r.getList(r.fieldIndex(column));
        return list.stream().mapToInt(Integer::intValue).toArray();
    }
}
