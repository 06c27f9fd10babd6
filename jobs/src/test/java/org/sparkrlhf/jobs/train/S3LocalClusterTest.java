package org.sparkrlhf.jobs.train;

import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.files.ModelCache;
import org.sparkrlhf.jobs.testing.S3Server;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GRPO on real executor JVMs ({@code local-cluster}: two executors of two CPU slots) started as
 * spark-submit starts a run: {@code train s3a://.../run.yaml}, the store's confs as
 * {@code spark.hadoop.*} system properties, which reach the executors through the application's
 * conf. Config, model, prompts and output are on an S3 server (S3Proxy through S3A), so the
 * executors read the model through their own S3A clients into the machine's model cache (one
 * copy, however many JVMs ask), rank 0 writes the checkpoint from its executor, and the tables
 * read back from s3a.
 */
class S3LocalClusterTest {
    private static final int ITERATIONS = 2;
    private static final int BATCH = 4;
    private static final int GROUP = 2;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void grpoOnExecutorJvmsReadsAndWritesEverythingOnS3() throws Exception {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null) {
            throw new IllegalStateException("SPARK_HOME must be set (jobs/pom.xml sets it for surefire)");
        }
        Files.createDirectories(Path.of(sparkHome, "jars"));
        Path cache = dir.resolve("model-cache");
        try (S3Server s3 = S3Server.start("cluster")) {
            Map<String, String> props = new java.util.LinkedHashMap<>(s3.sparkConf());
            props.put(ModelCache.DIR_CONF, cache.toString());
            props.forEach(System::setProperty);
            try {
                run(s3, cache);
            } finally {
                props.keySet().forEach(System::clearProperty);
                FileSystem.closeAll();
            }
        }
    }

    private void run(S3Server s3, Path cache) throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        String model = s3.uri("models/tiny-llama");
        HadoopFiles.uploadFolder(SftTrainingTest.TINY_LLAMA, model);
        HadoopFiles.write(s3.uri("data/prompts.jsonl"), jsonl.toString().getBytes(StandardCharsets.UTF_8));
        String output = s3.uri("grpo");
        String config = s3.uri("grpo.yaml");
        HadoopFiles.write(config, """
                name: grpo-s3-cluster
                algorithm: grpo
                seed: 7
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
                generation: {max_new_tokens: 3, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                grpo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2}
                checkpoint: {every: 1, keep: 1}
                plan: {mode: baseline}
                spark:
                  master: local-cluster[2,2,1024]
                  conf: {spark.executor.extraClassPath: '%s', spark.rlhf.comm.timeoutMs: "120000", spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(ITERATIONS, output, model, model, s3.uri("data/prompts.jsonl"), BATCH, GROUP,
                System.getProperty("java.class.path")).getBytes(StandardCharsets.UTF_8));

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config}, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        String progress = out.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, err.toString(StandardCharsets.UTF_8) + progress);
        assertTrue(progress.contains("4 CPU slots"), progress);
        assertTrue(progress.contains("final {actor=" + output + "/final}"), progress);

        // one copy of the model on this machine, made by the driver's check; no copy cut short
        try (var copies = Files.list(cache)) {
            List<String> names = copies.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(1, names.size(), names.toString());
            assertTrue(names.get(0).startsWith("tiny-llama-"), names.toString());
        }

        // the checkpoint of iteration 1, written by rank 0 on an executor, with the actor's optimizer state
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(output, HadoopFiles.conf()).newestComplete().orElseThrow();
        assertEquals(1, cp.state().iteration());
        assertEquals(1L, cp.state().version("actor"));
        assertEquals("1", SafeTensorsFile.open(cp.source("actor").localPath().resolve(OptimizerState.FILE)).metadata()
                .get("step"));
        // the final model, read from s3a, is the initial one trained: every weight matrix moved
        // (the tiny model earns no reward, so weight decay moves it; the norms' ones are not decayed)
        CheckpointWeights initial = CheckpointWeights.open(SftTrainingTest.TINY_LLAMA);
        CheckpointWeights trained = CheckpointWeights.open(ModelCache.local(output + "/final"));
        assertEquals(initial.names(), trained.names());
        for (String name : List.of("model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight")) {
            int[] shape = initial.entry(name).shape();
            assertFalse(Arrays.equals(initial.floats(name, shape), trained.floats(name, shape)), name + " was trained");
        }

        SparkSession spark = SparkSession.builder().master("local[1]").appName("S3LocalClusterTest tables")
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
                .getOrCreate();
        try {
            List<Row> counts = spark.read().format("delta").load(RunOutput.rolloutsPath(output))
                    .groupBy("iteration").count().orderBy("iteration").collectAsList();
            assertEquals(ITERATIONS, counts.size());
            for (int i = 0; i < ITERATIONS; i++) {
                assertEquals(i + 1L, counts.get(i).<Long>getAs("iteration"));
                assertEquals((long) BATCH * GROUP, counts.get(i).<Long>getAs("count"));
            }
            assertEquals(ITERATIONS, spark.read().format("delta").load(RunOutput.metricsPath(output))
                    .filter("name = 'loss/actor'").count());
        } finally {
            spark.stop();
        }
    }
}
