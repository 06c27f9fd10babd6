package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.testing.TestSpark;
import org.apache.hadoop.conf.Configuration;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code spark-rlhf train} on an SFT config, embedded (local[2]), from the tiny fixture model. */
@Tag("end-to-end")
class SftTrainingTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 360, unit = TimeUnit.SECONDS)
    void trainsWritesCheckpointsAndAFinalModel() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 4; a++) {
            for (int b = 1; b <= 4; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"answer\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("sft.jsonl"), jsonl);
        Path out = dir.resolve("run");
        Files.writeString(dir.resolve("sft.yaml"), """
                name: sft-test
                algorithm: sft
                seed: 3
                iterations: 4
                output: %s
                models:
                  actor: {path: %s}
                data:
                  path: %s
                  batch_size: 8
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 8}
                optimizer: {lr: 3.0e-3, weight_decay: 0.0}
                checkpoint: {every: 2, keep: 1}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(out, TINY_LLAMA, dir.resolve("sft.jsonl")));
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{dir.resolve("sft.yaml").toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String progress = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);

        double first = lossOf(progress, 1);
        double last = lossOf(progress, 4);
        assertTrue(last < first * 0.9, "the loss falls on a repeated dataset: " + first + " -> " + last);
        // a checkpoint at iteration 2 (none at the last iteration: the final model is written instead):
        // 16 examples read = epoch 1, offset 0
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(out.toString(), new Configuration()).newestComplete().orElseThrow();
        assertEquals(2, cp.state().iteration());
        assertEquals(1, cp.state().dataEpoch());
        assertEquals(0, cp.state().dataOffset());
        assertEquals(2L, cp.state().modelVersions().get("actor"));
        assertTrue(Files.exists(cp.localDir().resolve("actor/model.safetensors")));
        // one metrics row per figure per iteration, in the metrics Delta table
        org.apache.spark.sql.SparkSession spark = TestSpark.deltaSession("SftTrainingTest", 1);
        try {
            org.apache.spark.sql.Dataset<org.apache.spark.sql.Row> losses = spark.read().format("delta")
                    .load(RunOutput.metricsPath(out)).filter("name = 'loss/actor'").orderBy("iteration");
            assertEquals(4, losses.count());
            assertEquals(first, losses.first().<Double>getAs("value"), 1e-4);
        } finally {
            spark.stop();
        }
        // the final folder is an HF checkpoint the engine loads, with the tokenizer beside it
        assertTrue(Files.exists(out.resolve("final/tokenizer.json")));
        try (CpuBackend backend = new CpuBackend(); LlamaModel m = LlamaModel.load(backend, out.resolve("final"))) {
            assertEquals(2, m.config().numLayers());
        }
    }

    private static double lossOf(String progress, int iteration) {
        for (String line : progress.split("\n")) {
            if (line.startsWith("iter " + iteration + "/")) {
                return Double.parseDouble(line.split("\\|")[1].trim().substring("loss ".length()));
            }
        }
        throw new AssertionError("no progress line for iteration " + iteration + " in:\n" + progress);
    }
}
