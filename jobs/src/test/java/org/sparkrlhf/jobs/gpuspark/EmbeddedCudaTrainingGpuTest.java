package org.sparkrlhf.jobs.gpuspark;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.EngineOptions;
import org.sparkrlhf.jobs.train.RunOutput;
import org.sparkrlhf.jobs.train.TrainCommand;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole iterations of {@code spark-rlhf train}, embedded (local[1]) with the models on the CUDA
 * backend of GPU 0 ({@value EngineOptions#LOCAL_GPU}), checked against the CPU engine. Skipped
 * without a CUDA driver.
 *
 * <p>Why the embedded run picks its GPU by a setting and not by Spark's resources: Spark's local
 * mode cannot give tasks GPUs (a {@code local[N]} stage that asks for
 * {@code spark.task.resource.gpu.amount} is never scheduled), and local-cluster executors would
 * need Spark's launch scripts on the GPU machine. With one task slot, every call has one rank, so
 * no NCCL communicator is made (two ranks on the one GPU would be refused by NCCL anyway).
 *
 * <p>Kept apart from {@code org.sparkrlhf.jobs.gpu} (which needs no Spark) because it needs Spark,
 * Delta and Hadoop on the classpath and a fuller Java runtime than the GPU machine's packed one:
 * run it on a GPU node with the jobs module's test classpath.
 *
 * <p>Tolerances: the CUDA backend in fp32 computes every product and reduction in fp32 without
 * TF32 ({@code Precision.FP32}), so it differs from the CPU engine only in the order of additions;
 * gpu-exec's own model test finds the two within about 1e-5 relative. Logprobs are compared at
 * 1e-4 x max(1, |logprob|), ten times that.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class EmbeddedCudaTrainingGpuTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(CudaBackend.isAvailable(), () -> "skipped: " + CudaBackend.unavailableReason());
    }

    /**
     * One GRPO iteration on the GPU (sampling, reference logprobs, a train step), then the CPU
     * engine scores the sampled responses with the same initial model: the rollouts' reference
     * logprobs (ref_inf on CUDA) and behaviour logprobs (actor_gen's decode on CUDA, before the
     * step) must match it.
     */
    @Test
    void grpoIterationOnCudaMatchesTheCpuEnginesLogprobs() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path out = dir.resolve("grpo");
        Path config = dir.resolve("grpo.yaml");
        Files.writeString(config, """
                name: grpo-cuda
                algorithm: grpo
                seed: 5
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: 2
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 6, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                grpo: {group_size: 4, kl_coef: 0.04, clip_ratio: 0.2}
                plan: {mode: baseline}
                spark:
                  master: local[1]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1,
                         %s: "0", %s: fp32}
                """.formatted(out, TINY_LLAMA, TINY_LLAMA, dir.resolve("prompts.jsonl"),
                EngineOptions.LOCAL_GPU, EngineOptions.PRECISION));
        train(config);

        SparkSession spark = session();
        List<Row> rows;
        try {
            Dataset<Row> rollouts = spark.read().format("delta").load(RunOutput.rolloutsPath(out));
            rows = rollouts.collectAsList();
        } finally {
            spark.stop();
        }
        assertEquals(8, rows.size(), "2 prompts x 4 samples");
        int compared = 0;
        try (CpuBackend cpu = new CpuBackend(); LlamaModel model = LlamaModel.load(cpu, TINY_LLAMA)) {
            for (Row r : rows) {
                int[] prompt = ints(r.getList(r.fieldIndex("prompt_tokens")));
                int[] response = ints(r.getList(r.fieldIndex("response_tokens")));
                float[] reference = responseLogprobs(model, prompt, response);
                float[] ref = floats(r.getList(r.fieldIndex("ref_logprobs")));
                float[] behaviour = floats(r.getList(r.fieldIndex("logprobs")));
                for (int j = 0; j < response.length; j++) {
                    double tolerance = 1e-4 * Math.max(1, Math.abs(reference[j]));
                    assertEquals(reference[j], ref[j], tolerance, "ref_logprobs of " + r.getAs("prompt_id") + " token " + j);
                    assertEquals(reference[j], behaviour[j], tolerance, "logprobs of " + r.getAs("prompt_id") + " token " + j);
                    compared++;
                }
            }
        }
        assertTrue(compared >= 8, "compared " + compared + " tokens");
    }

    /**
     * One SFT iteration on the CPU engine and one on the GPU, from the same model and batch: the
     * iteration's loss (a mean of the initial model's token logprobs) agrees to the logprob
     * tolerance, and after the one AdamW step no weight is further apart than AdamW's first step
     * allows (each weight moves by lr * g / (|g| + eps), at most lr, in either run: 2 lr).
     */
    @Test
    void sftIterationOnCudaMatchesTheCpuEngine() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 4; a++) {
            for (int b = 1; b <= 2; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"answer\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("sft.jsonl"), jsonl);
        double lr = 3.0e-3;
        Path cpuOut = dir.resolve("sft-cpu");
        Path gpuOut = dir.resolve("sft-gpu");
        train(sftConfig("sft-cpu.yaml", cpuOut, lr, ""));
        train(sftConfig("sft-gpu.yaml", gpuOut, lr, ", " + EngineOptions.LOCAL_GPU + ": \"0\""));

        SparkSession spark = session();
        double cpuLoss;
        double gpuLoss;
        try {
            cpuLoss = loss(spark, cpuOut);
            gpuLoss = loss(spark, gpuOut);
        } finally {
            spark.stop();
        }
        assertEquals(cpuLoss, gpuLoss, 1e-4 * Math.max(1, Math.abs(cpuLoss)), "iteration 1 loss, CPU vs CUDA");

        try (CpuBackend cpu = new CpuBackend();
             LlamaModel a = LlamaModel.load(cpu, cpuOut.resolve("final"));
             LlamaModel b = LlamaModel.load(cpu, gpuOut.resolve("final"))) {
            LlamaWeights wa = a.parameters();
            LlamaWeights wb = b.parameters();
            for (LlamaWeights.Spec s : wa.specs()) {
                float[] x = cpu.download(wa.get(s.name()));
                float[] y = cpu.download(wb.get(s.name()));
                for (int i = 0; i < x.length; i++) {
                    assertTrue(Math.abs(x[i] - y[i]) <= 2 * lr + 1e-6, s.name() + "[" + i + "]: " + x[i] + " vs " + y[i]);
                }
            }
        }
    }

    private Path sftConfig(String name, Path out, double lr, String extraConf) throws Exception {
        Path config = dir.resolve(name);
        Files.writeString(config, """
                name: sft-cuda
                algorithm: sft
                seed: 3
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                data:
                  path: %s
                  batch_size: 8
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 8}
                optimizer: {lr: %s, weight_decay: 0.0}
                plan: {mode: baseline}
                spark:
                  master: local[1]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1%s}
                """.formatted(out, TINY_LLAMA, dir.resolve("sft.jsonl"), lr, extraConf));
        return config;
    }

    private static double loss(SparkSession spark, Path out) {
        return spark.read().format("delta").load(RunOutput.metricsPath(out))
                .filter("name = 'loss/actor' and iteration = 1").first().<Double>getAs("value");
    }

    /** log p(response[j] | prompt, response[..j]) from one right-padded row on the CPU engine. */
    private static float[] responseLogprobs(LlamaModel model, int[] prompt, int[] response) {
        int[] seq = new int[prompt.length + response.length];
        System.arraycopy(prompt, 0, seq, 0, prompt.length);
        System.arraycopy(response, 0, seq, prompt.length, response.length);
        TokenStats stats = model.forward(Batch.rightPadded(new int[][]{seq}, 0), false);
        float[] out = new float[response.length];
        for (int j = 0; j < response.length; j++) {
            out[j] = stats.logprob(0, prompt.length + j - 1);
        }
        model.releaseActivations();
        return out;
    }

    private static SparkSession session() {
        return SparkSession.builder().master("local[1]")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog").getOrCreate();
    }

    /** Runs a config as {@code spark-rlhf train} does, embedded: its Spark application from its spark section. */
    private static void train(Path config) {
        RunConfig run = new RunConfigReader(new Configuration()).read(config.toString());
        SparkSession.Builder builder = SparkSession.builder().appName(run.name()).master(run.spark().master())
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
                .config("spark.sql.shuffle.partitions", "4");
        for (Map.Entry<String, String> e : run.spark().conf().entrySet()) {
            builder.config(e.getKey(), e.getValue());
        }
        SparkSession spark = builder.getOrCreate();
        try {
            TrainCommand.train(spark, run, System.out);
        } finally {
            spark.stop();
        }
    }

    private static int[] ints(List<Object> values) {
        int[] out = new int[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) values.get(i)).intValue();
        }
        return out;
    }

    private static float[] floats(List<Object> values) {
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) values.get(i)).floatValue();
        }
        return out;
    }
}
