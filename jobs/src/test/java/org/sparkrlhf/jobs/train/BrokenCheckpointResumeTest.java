package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An embedded SFT run (local[1], the tiny fixture model, a checkpoint every iteration, keep 2) whose
 * newest checkpoint is broken after the run, three times in a row, each in another way (a file cut
 * short, the {@code _COMPLETE} marker lost, a file longer than the marker lists), each time resumed
 * with {@code --resume} and more iterations: the run sets the broken folder aside, resumes from the
 * checkpoint before it, redoes that iteration and writes its checkpoint again, bit for bit what
 * the first write held (the resumed run is the uninterrupted one), and finishes; every iteration's
 * loss is in the metrics table once.
 */
class BrokenCheckpointResumeTest {
    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("broken checkpoint resume test", 1);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        ModelStore.get().clear();
    }

    private RunConfig config(Path out, int iterations) throws IOException {
        Path data = dir.resolve("sft.jsonl");
        if (!Files.exists(data)) {
            StringBuilder jsonl = new StringBuilder();
            for (int a = 1; a <= 3; a++) {
                for (int b = 1; b <= 3; b++) {
                    jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                            .append(b).append("=\", \"answer\": \"").append(a + b).append("\"}\n");
                }
            }
            Files.writeString(data, jsonl);
        }
        Path yaml = dir.resolve("sft-" + iterations + ".yaml");
        Files.writeString(yaml, """
                name: sft-broken-checkpoint
                algorithm: sft
                seed: 5
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                data:
                  path: %s
                  batch_size: 4
                  max_prompt_tokens: 16
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                checkpoint: {every: 1, keep: 2}
                plan: {mode: baseline}
                spark:
                  master: local[1]
                """.formatted(iterations, out, SftTrainingTest.TINY_LLAMA, data));
        return new RunConfigReader(new Configuration()).read(yaml.toString());
    }

    private static String train(RunConfig config, boolean resume) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, config, new PrintStream(sink, true, StandardCharsets.UTF_8), resume);
        } finally {
            ModelStore.get().clear(); // the job's executors end with it
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    /** A checkpoint's actor files (weights and AdamW state): name to bytes. */
    private static Map<String, byte[]> actorFiles(Path checkpoint) throws IOException {
        Map<String, byte[]> files = new TreeMap<>();
        for (String name : List.of("model.safetensors", OptimizerState.FILE)) {
            files.put(name, Files.readAllBytes(checkpoint.resolve("actor").resolve(name)));
        }
        return files;
    }

    private static List<String> checkpointFolders(Path out) throws IOException {
        try (Stream<Path> files = Files.list(out.resolve("checkpoints"))) {
            return files.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")).sorted()
                    .map(n -> n.replaceAll("\\.set-aside-.*", ".set-aside-*")).toList();
        }
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aBrokenNewestCheckpointIsSetAsideAndTheResumedRunRewritesItAndFinishes() throws Exception {
        Path out = dir.resolve("run");
        train(config(out, 3), false);
        assertEquals(List.of("iter-00000001", "iter-00000002"), checkpointFolders(out));

        record Break(String how, String reason) {
        }
        List<Break> breaks = List.of(
                new Break("cut short", "actor/model.safetensors has "),
                new Break("marker lost", "no _COMPLETE"),
                new Break("longer", "actor/" + OptimizerState.FILE + " has "));
        int last = 3;
        for (Break b : breaks) {
            int broken = last - 1;
            Path cp = out.resolve("checkpoints").resolve(String.format("iter-%08d", broken));
            Map<String, byte[]> written = actorFiles(cp);
            switch (b.how()) {
                case "cut short" -> Files.write(cp.resolve("actor/model.safetensors"),
                        Arrays.copyOf(written.get("model.safetensors"), written.get("model.safetensors").length / 2));
                case "marker lost" -> Files.delete(cp.resolve("_COMPLETE"));
                case "longer" -> Files.write(cp.resolve("actor").resolve(OptimizerState.FILE), new byte[]{0},
                        StandardOpenOption.APPEND);
                default -> throw new IllegalStateException(b.how());
            }
            last++;
            String resumed = train(config(out, last), true);
            assertTrue(resumed.contains(cp + " is not complete (" + b.reason())
                            && resumed.contains(String.format("iter-%08d (iteration %d done", broken - 1, broken - 1))
                            && resumed.contains("iter " + broken + "/" + last) && resumed.contains("iter " + last + "/" + last),
                    b.how() + ":\n" + resumed);
            Map<String, byte[]> rewritten = actorFiles(cp);
            for (String name : written.keySet()) {
                assertArrayEquals(written.get(name), rewritten.get(name), b.how() + ": " + name + " of checkpoint " + broken);
            }
            // keep 2: the rewritten checkpoint and the newest; the broken folder goes with its iteration's checkpoint
            assertEquals(List.of(String.format("iter-%08d", broken), String.format("iter-%08d", broken) + ".set-aside-*",
                    String.format("iter-%08d", last - 1)), checkpointFolders(out), b.how());
        }
        assertTrue(Files.isRegularFile(out.resolve("final/model.safetensors")));
        Map<Long, Integer> losses = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).filter("name = 'loss/actor'")
                .collectAsList()) {
            losses.merge(r.<Long>getAs("iteration"), 1, Integer::sum);
        }
        assertEquals(Map.of(1L, 1, 2L, 1, 3L, 1, 4L, 1, 5L, 1, 6L, 1), losses, "every iteration's loss once");
    }
}
