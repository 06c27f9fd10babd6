package org.sparkrlhf.jobs.train;

import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.files.ModelCache;
import org.sparkrlhf.jobs.testing.S3Server;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs whose every path is on an S3-compatible server (S3Proxy in this JVM, reached through S3A):
 * the model folders executors read (copied once into the machine's model cache), the prompts, the
 * Delta tables, the checkpoints (committed in place, the marker last: S3 has no rename) and the
 * final model.
 *
 * <p>The GRPO run (local[2], two data-parallel ranks) is killed twice as {@link ResumeTest} kills
 * its runs, and resumed: once while checkpoint 2 is being written (the folder stays without its
 * marker and is set aside on resume), once after iteration 3's tables. It ends with the rollouts,
 * read back from s3a, and the final weights of the same run made without a kill on local disk.
 */
class S3RunTest {
    static final int ITERATIONS = 4;
    static final int BATCH = 2;
    static final int GROUP = 2;

    static S3Server s3;
    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        s3 = S3Server.start("runs");
        SparkSession.Builder builder = SparkSession.builder().master("local[2]").appName("s3 run test")
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.databricks.delta.snapshotPartitions", "1")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog");
        s3.sparkConf().forEach(builder::config);
        spark = builder.getOrCreate();
        ModelStore.get().clear();
    }

    @AfterAll
    static void stop() throws Exception {
        spark.stop();
        ModelStore.get().clear();
        // the cached S3A file systems point at this server
        FileSystem.closeAll();
        s3.close();
    }

    @Test
    void aRemoteModelFolderIsCopiedOnceToLocalDiskAndAnewWhenRewritten() throws Exception {
        String folder = s3.uri("cache-test/tiny-llama");
        HadoopFiles.uploadFolder(SftTrainingTest.TINY_LLAMA, folder);
        // four tasks asking at once get one copy
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<Path>> copies = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            copies.add(pool.submit((Callable<Path>) () -> new ModelSource(folder, 0).localPath()));
        }
        Path copy = copies.get(0).get();
        for (Future<Path> f : copies) {
            assertEquals(copy, f.get());
        }
        pool.shutdown();
        assertFalse(copy.startsWith(SftTrainingTest.TINY_LLAMA));
        try (var files = Files.list(SftTrainingTest.TINY_LLAMA)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(copy.resolve(f.getFileName())), f.toString());
            }
        }
        try (var siblings = Files.list(copy.getParent())) {
            assertEquals(List.of(), siblings.filter(p -> p.getFileName().toString().startsWith(copy.getFileName() + ".partial"))
                    .toList(), "no partial copy left behind");
        }
        // the folder rewritten under the same name: a new copy, with the new bytes
        HadoopFiles.write(HadoopFiles.resolve(folder, "generation_config.json"), "{}".getBytes(StandardCharsets.UTF_8));
        Path again = ModelCache.local(folder);
        assertNotEquals(copy, again);
        assertEquals("{}", Files.readString(again.resolve("generation_config.json")));
        // a local folder is itself
        assertEquals(SftTrainingTest.TINY_LLAMA, ModelCache.local(SftTrainingTest.TINY_LLAMA.toString()));
    }

    @Test
    void aCheckpointOnS3IsWrittenInPlaceAndCompleteOnlyWithItsMarker() {
        RunCheckpoints cps = new RunCheckpoints(s3.uri("checkpoint-test"), HadoopFiles.conf());
        RunState one = new RunState("run-s3", 1, 1, 100, 0, 8, 1, 0.05, Map.of("actor", 1L), Map.of());
        cps.write(one, folder -> HadoopFiles.write(HadoopFiles.resolve(folder, "actor/model.safetensors"),
                "one".getBytes(StandardCharsets.UTF_8)), 2);
        RunState two = new RunState("run-s3", 2, 1, 100, 0, 16, 2, 0.05, Map.of("actor", 2L), Map.of());
        assertThrows(IllegalStateException.class, () -> cps.write(two, folder -> {
            // in place: the folder has its final name while it is written
            assertTrue(folder.endsWith("/checkpoints/iter-00000002"), folder);
            HadoopFiles.write(HadoopFiles.resolve(folder, "actor/model.safetensors"), "tw".getBytes(StandardCharsets.UTF_8));
            throw new java.io.IOException("killed");
        }, 2));
        assertTrue(HadoopFiles.exists(s3.uri("checkpoint-test/checkpoints/iter-00000002/actor/model.safetensors")));
        RunCheckpoints.Checkpoint newest = cps.newestComplete().orElseThrow();
        assertEquals(one, newest.state(), "a folder without its marker is not a checkpoint");
        assertEquals(new ModelSource(s3.uri("checkpoint-test/checkpoints/iter-00000001/actor"), 1),
                newest.source("actor"));
        // written again: the folder cut short is set aside, the new one is complete
        cps.write(two, folder -> HadoopFiles.write(HadoopFiles.resolve(folder, "actor/model.safetensors"),
                "two".getBytes(StandardCharsets.UTF_8)), 2);
        assertEquals(two, cps.newestComplete().orElseThrow().state());
        assertEquals("two", new String(HadoopFiles.read(s3.uri("checkpoint-test/checkpoints/iter-00000002/actor/"
                + "model.safetensors")), StandardCharsets.UTF_8));
        assertEquals(1, HadoopFiles.files(s3.uri("checkpoint-test/checkpoints")).keySet().stream()
                .filter(n -> n.startsWith("iter-00000002.set-aside-") && n.endsWith("/actor/model.safetensors")).count());
    }

    private RunConfig grpoConfig(String output, String model, String prompts, String name) throws Exception {
        Path config = dir.resolve(name + ".yaml");
        Files.writeString(config, """
                name: grpo-s3
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
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2, mini_batches: 2}
                checkpoint: {every: 2, keep: 2}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                """.formatted(ITERATIONS, output, model, model, prompts, BATCH, GROUP));
        return new RunConfigReader(HadoopFiles.conf()).read(config.toString());
    }

    private static String train(RunConfig config, boolean resume, int killAt, Runnable kill) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, config, ResumeTest.progress(sink, killAt, kill), resume);
        } finally {
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    /** Runs the config expecting it to die; returns what it printed. The executors die with it. */
    private static String trainAndDie(RunConfig config, boolean resume, int killAt, Runnable kill) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            assertThrows(Exception.class, () -> TrainCommand.train(spark, config, ResumeTest.progress(sink, killAt, kill),
                    resume));
        } finally {
            ModelStore.get().clear();
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    @Test
    @Timeout(value = 900, unit = TimeUnit.SECONDS)
    void grpoWithModelDataAndOutputOnS3IsKilledResumesAndItsTablesReadBack() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Path localPrompts = dir.resolve("prompts.jsonl");
        Files.writeString(localPrompts, jsonl);
        String model = s3.uri("models/tiny-llama");
        String prompts = s3.uri("data/prompts.jsonl");
        HadoopFiles.uploadFolder(SftTrainingTest.TINY_LLAMA, model);
        HadoopFiles.upload(localPrompts, prompts);
        String output = s3.uri("grpo-s3");

        Path straight = dir.resolve("straight");
        ModelStore.get().clear();
        train(grpoConfig(straight.toString(), SftTrainingTest.TINY_LLAMA.toString(), localPrompts.toString(), "local"),
                false, 0, null);
        ModelStore.get().clear();

        RunConfig config = grpoConfig(output, model, prompts, "s3");
        RunCheckpoints checkpoints = new RunCheckpoints(output, HadoopFiles.conf());
        // 1. iteration 2's tables are written, then the actor is lost: checkpoint 2, written in
        //    place, stays without its marker
        trainAndDie(config, false, 2, ResumeTest.loseActor());
        assertTrue(checkpoints.newestComplete().isEmpty(), "a checkpoint cut short is not complete");
        assertTrue(HadoopFiles.exists(output + "/checkpoints/iter-00000002"));
        // 2. --resume sets it aside and finds no complete checkpoint: a fresh start, which writes
        //    checkpoint 2 and is killed after iteration 3's tables
        String fresh = trainAndDie(config, true, 3, ResumeTest.throwKilled(3));
        assertTrue(fresh.contains("is not complete (no _COMPLETE") && fresh.contains("resume: no complete checkpoint"),
                fresh);
        assertEquals(2, checkpoints.newestComplete().orElseThrow().state().iteration());
        // 3. --resume from checkpoint 2 (the actor and its optimizer state read from s3a): iteration 3 again, then 4
        String last = train(config, true, 0, null);
        ModelStore.get().clear();
        assertTrue(last.contains("resume: from " + output + "/checkpoints/iter-00000002") && last.contains("iter 4/4")
                && !last.contains("iter 2/4"), last);

        // the tables, read back from s3a: every iteration's rows once, the uninterrupted run's
        Map<String, List<String>> expected = rollouts(RunOutput.rolloutsPath(straight));
        Map<String, List<String>> actual = rollouts(RunOutput.rolloutsPath(output));
        assertEquals(Set.of("1", "2", "3", "4"), actual.keySet());
        for (int i = 1; i <= ITERATIONS; i++) {
            assertEquals(BATCH * GROUP, actual.get(Integer.toString(i)).size(), "iteration " + i);
            assertEquals(expected.get(Integer.toString(i)), actual.get(Integer.toString(i)), "iteration " + i);
        }
        assertEquals(lossesByIteration(RunOutput.metricsPath(straight)), lossesByIteration(RunOutput.metricsPath(output)));
        assertEquals(ITERATIONS, spark.read().format("delta").load(RunOutput.plansPath(output)).count());

        // checkpoint 2 on s3a holds the actor's optimizer state (one step per mini-batch), and the
        // final model, copied down, is the uninterrupted run's
        RunCheckpoints.Checkpoint cp = checkpoints.newestComplete().orElseThrow();
        assertEquals(4L, cp.state().version("actor"));
        Path cpActor = cp.source("actor").localPath();
        assertEquals("4", SafeTensorsFile.open(cpActor.resolve(OptimizerState.FILE)).metadata().get("step"));
        assertWeightsEqual(straight.resolve("final"), ModelCache.local(output + "/final"));
        assertFalse(HadoopFiles.exists(output + "/final.partial"));
    }

    /** iteration -> its rows (prompt, policy version, response tokens, reward), sorted. */
    private static Map<String, List<String>> rollouts(String table) {
        Map<String, List<String>> byIteration = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(table).collectAsList()) {
            String row = r.getAs("prompt_id") + " v" + r.getAs("policy_version") + " "
                    + r.getList(r.fieldIndex("response_tokens")) + " reward " + r.getAs("reward");
            byIteration.computeIfAbsent(Long.toString(r.<Long>getAs("iteration")), k -> new ArrayList<>()).add(row);
        }
        byIteration.values().forEach(rows -> rows.sort(String::compareTo));
        return byIteration;
    }

    /** iteration -> the actor's loss. */
    private static Map<Long, Double> lossesByIteration(String table) {
        Map<Long, Double> losses = new TreeMap<>();
        for (Row r : spark.read().format("delta").load(table).filter("name = 'loss/actor'").collectAsList()) {
            assertEquals(null, losses.put(r.<Long>getAs("iteration"), r.<Double>getAs("value")));
        }
        return losses;
    }

    private static void assertWeightsEqual(Path a, Path b) {
        CheckpointWeights wa = CheckpointWeights.open(a);
        CheckpointWeights wb = CheckpointWeights.open(b);
        assertEquals(wa.names(), wb.names());
        for (String name : wa.names()) {
            int[] shape = wa.entry(name).shape();
            assertTrue(Arrays.equals(wa.floats(name, shape), wb.floats(name, shape)), name);
        }
    }
}
