package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GRPO, embedded (local[2]), greedy, on the tiny fixture model, with and without S3D speculative
 * decoding: the rollouts are token for token the same; the speculative run reports its s3d figures
 * every iteration, trains the draft after actor_train, writes it into the checkpoint's and the final
 * actor folders, and a resumed run continues from the checkpoint's draft.
 */
@Tag("end-to-end")
@Tag("one-spark-line") // S3D in a run: no Spark-line difference beyond what GrpoTrainingTest covers on both
class S3dGrpoTrainingTest {
    static final int ITERATIONS = 2;

    @TempDir
    Path dir;

    private Path config(String name, int iterations, String speculative) throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            jsonl.append("{\"id\": \"q").append(a).append("\", \"prompt\": \"").append(a).append("+")
                    .append(a + 1).append("=\", \"reference\": \"").append(2 * a + 1).append("\"}\n");
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path config = dir.resolve(name + "-" + iterations + ".yaml");
        Files.writeString(config, """
                name: s3d-grpo-test
                algorithm: grpo
                seed: 5
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: 2, max_prompt_tokens: 16}
                generation:
                  max_new_tokens: 8
                  temperature: 0.0
                %s
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                grpo: {group_size: 2, kl_coef: 0.04, clip_ratio: 0.2}
                checkpoint: {every: 1}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(iterations, dir.resolve(name), SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                dir.resolve("prompts.jsonl"), speculative));
        return config;
    }

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void greedySpeculativeRolloutsAreThoseOfPlainDecoding() throws Exception {
        String s3d = "  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3, train_steps: 2}";
        train(config("plain", ITERATIONS, ""));
        String progress = train(config("s3d", ITERATIONS, s3d));
        assertTrue(progress.contains("mask embeddings freshly initialised (no s3d.safetensors"), progress);
        assertTrue(progress.contains("| s3d/acceptance "), progress);

        SparkSession spark = TestSpark.deltaSession("S3dGrpoTrainingTest", 1);
        try {
            assertEquals(responses(spark, "plain"), responses(spark, "s3d"));
            Dataset<Row> metrics = spark.read().format("delta").load(RunOutput.metricsPath(dir.resolve("s3d")));
            for (String name : List.of("s3d/acceptance", "s3d/tokens_per_step", "s3d/draft_seconds", "s3d/verify_seconds",
                    "s3d/train_loss", "seconds/s3d_train", "actor_gen/tokens_per_second")) {
                assertEquals(ITERATIONS, metrics.filter(metrics.col("name").equalTo(name)).count(), name);
            }
            for (Row r : metrics.filter("name = 's3d/tokens_per_step'").collectAsList()) {
                double v = r.getAs("value");
                assertTrue(v >= 1 && v <= 4, "tokens per step within [1, k + 1]: " + v);
            }
        } finally {
            spark.stop();
        }
        assertTrue(S3dDraft.present(dir.resolve("s3d").resolve("final")));
        try (Stream<Path> checkpoints = Files.list(dir.resolve("s3d").resolve("checkpoints"))) {
            Path actor = checkpoints.filter(Files::isDirectory).findFirst().orElseThrow().resolve("actor");
            assertTrue(S3dDraft.present(actor), actor.toString());
        }
        String resumed = train(config("s3d", ITERATIONS + 1, s3d), "--resume");
        assertTrue(resumed.contains("mask embeddings from ") && resumed.contains("checkpoints"), resumed);
        assertTrue(resumed.contains("iter " + (ITERATIONS + 1) + "/" + (ITERATIONS + 1)), resumed);
    }

    /** Each rollout's response tokens, by iteration, prompt and sample. */
    private List<String> responses(SparkSession spark, String run) {
        return spark.read().format("delta").load(RunOutput.rolloutsPath(dir.resolve(run)))
                .orderBy("iteration", "prompt_id", "sample").collectAsList().stream()
                .map(r -> r.getAs("iteration") + "/" + r.getAs("prompt_id") + "/" + r.getAs("sample") + ": "
                        + r.getList(r.fieldIndex("response_tokens")))
                .toList();
    }

    private static String train(Path config, String... flags) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        String[] args = Stream.concat(Stream.of(config.toString()), Stream.of(flags)).toArray(String[]::new);
        int code = TrainCommand.run(args, new PrintStream(stdout, true, StandardCharsets.UTF_8),
                new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String progress = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
        return progress;
    }
}
