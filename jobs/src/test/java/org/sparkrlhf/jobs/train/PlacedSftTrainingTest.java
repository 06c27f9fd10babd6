package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SFT with actor_train placed by a manual plan on tensor and pipeline shards (embedded, local[4]: four
 * device slots in one JVM, the ranks talking over TCP): the per-iteration losses and the final weights
 * equal those of the single-rank run (dp1) with the same seed, and each iteration's plan is in the
 * plans table. The runs take several steps without checkpoints, so every step after the first finds
 * the actor resident in the store: a reload would fail (the source holds version 0 only).
 *
 * <p>Tolerances: the runs compute the same sums in other orders (tensor parallelism adds partial
 * products after an all-reduce, micro-batches add their gradients one after the other, data-parallel
 * ranks add partial sums), so losses differ in the last bits of float: 1e-5 relative (measured: under
 * 1e-7). AdamW divides each gradient by its running RMS, so the weights take those rounding errors
 * into the update where a gradient element is near zero: 5e-5 absolute on weights of order 0.1
 * (measured: under 1e-5; lr is 3e-3, and a lost or doubled micro-batch or a wrong slice moves
 * weights by ~lr).
 */
class PlacedSftTrainingTest {
    private static final int ITERATIONS = 2;

    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("placed sft test", 4);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        ModelStore.get().clear();
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void shardedActorTrainGivesTheSingleRankLossesAndWeights() throws Exception {
        Map<String, String> layouts = new LinkedHashMap<>();
        layouts.put("dp1", "{devices: [0]}");
        layouts.put("tp2", "{devices: [0, 1], tp: 2}");
        layouts.put("tp2pp2", "{devices: [0, 1, 2, 3], tp: 2, pp: 2, micro_batches: 2}");
        layouts.put("dp2pp2", "{devices: [0, 1, 2, 3], dp: 2, pp: 2, micro_batches: 2}");
        Map<String, double[]> losses = new LinkedHashMap<>();
        for (Map.Entry<String, String> l : layouts.entrySet()) {
            Path out = dir.resolve(l.getKey());
            String progress = train(config(l.getKey(), out, l.getValue(), 0));
            assertTrue(progress.contains("iter " + ITERATIONS + "/" + ITERATIONS + " | loss "), progress);
            // the run leaves no copy of the actor behind in the executors
            assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().equals("actor")),
                    ModelStore.get().keys().toString());
            losses.put(l.getKey(), losses(out));
            // one plans row per iteration: this plan, with actor_train's measured seconds
            IterationTable<PlanRow> table = IterationTable.plans(spark, RunOutput.plansPath(out));
            assertEquals(java.util.stream.LongStream.rangeClosed(1, ITERATIONS).boxed().toList(), table.read().select("iteration").collectAsList().stream()
                    .map(r -> r.getLong(0)).sorted().toList(), l.getKey());
            PlanRow plan = table.collectIteration(l.getKey(), ITERATIONS).get(0);
            assertEquals(List.of("actor_train"), plan.calls().stream().map(PlanRow.CallTiming::call).toList());
            assertNotNull(plan.calls().get(0).measuredSeconds());
            assertTrue(plan.planJson().contains("actor_train"), plan.planJson());
        }
        double[] expected = losses.get("dp1");
        assertTrue(expected[ITERATIONS - 1] < expected[0], "the loss falls: " + java.util.Arrays.toString(expected));
        Path reference = dir.resolve("dp1").resolve("final");
        for (String layout : List.of("tp2", "tp2pp2", "dp2pp2")) {
            double[] got = losses.get(layout);
            double worstLoss = 0;
            for (int i = 0; i < ITERATIONS; i++) {
                worstLoss = Math.max(worstLoss, Math.abs(got[i] - expected[i]) / Math.abs(expected[i]));
                assertEquals(expected[i], got[i], 1e-5 * Math.abs(expected[i]), layout + " loss of iteration " + (i + 1));
            }
            double worstWeight = maxWeightDifference(reference, dir.resolve(layout).resolve("final"));
            System.out.printf("%s: largest relative loss difference %.3g, largest weight difference %.3g%n", layout,
                    worstLoss, worstWeight);
            assertTrue(worstWeight < 5e-5, layout + ": final weights differ from dp1's by " + worstWeight);
        }
    }

    /**
     * A tp2 run that ends after iteration 2 with a checkpoint of iteration 1, resumed from it (the
     * shards' AdamW moments gathered into the checkpoint and cut back into the shards) to iteration
     * 3, ends with the weights of the run that went through 3 iterations at once, bit for bit:
     * gathering and cutting are copies, and the sums are the same.
     */
    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void shardedActorTrainResumesFromItsCheckpointToTheSameWeights() throws Exception {
        String tp2 = "{devices: [0, 1], tp: 2}";
        Path straight = dir.resolve("tp2-straight");
        Path stopped = dir.resolve("tp2-stopped");
        train(config("tp2-straight", "tp2-ckpt", 3, straight, tp2, 1));
        train(config("tp2-stopped", "tp2-ckpt", 2, stopped, tp2, 1));
        assertTrue(Files.exists(stopped.resolve("checkpoints").resolve("iter-00000001").resolve("actor")
                .resolve(OptimizerState.FILE)));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        TrainCommand.train(spark, config("tp2-resumed", "tp2-ckpt", 3, stopped, tp2, 1),
                new PrintStream(bytes, true, StandardCharsets.UTF_8), true);
        String resumed = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(!resumed.contains("iter 1/") && resumed.contains("iter 2/3") && resumed.contains("iter 3/3"),
                resumed);
        assertEquals(0.0, maxWeightDifference(straight.resolve("final"), stopped.resolve("final")));
    }

    /** The largest absolute difference between two HF folders' weights, tensor by tensor. */
    private static double maxWeightDifference(Path a, Path b) {
        CheckpointWeights wa = CheckpointWeights.open(a);
        CheckpointWeights wb = CheckpointWeights.open(b);
        assertEquals(wa.names(), wb.names());
        double worst = 0;
        for (String name : wa.names()) {
            int[] shape = wa.entry(name).shape();
            float[] x = wa.floats(name, shape);
            float[] y = wb.floats(name, shape);
            assertEquals(x.length, y.length, name);
            for (int i = 0; i < x.length; i++) {
                worst = Math.max(worst, Math.abs(x[i] - y[i]));
            }
        }
        return worst;
    }

    /** The run's loss/actor figures by iteration, from its metrics table (read once). */
    private static double[] losses(Path out) {
        double[] losses = new double[ITERATIONS];
        java.util.Arrays.fill(losses, Double.NaN);
        for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).filter("name = 'loss/actor'")
                .collectAsList()) {
            losses[Math.toIntExact(r.<Long>getAs("iteration")) - 1] = r.<Double>getAs("value");
        }
        for (int i = 0; i < ITERATIONS; i++) {
            assertFalse(Double.isNaN(losses[i]), out + ": iteration " + (i + 1) + " has no loss");
        }
        return losses;
    }

    private RunConfig config(String name, Path out, String actorTrain, int checkpointEvery) throws Exception {
        return config(name, name, ITERATIONS, out, actorTrain, checkpointEvery);
    }

    private RunConfig config(String file, String name, int iterations, Path out, String actorTrain, int checkpointEvery)
            throws Exception {
        Path data = dir.resolve("sft.jsonl");
        if (!Files.exists(data)) {
            StringBuilder jsonl = new StringBuilder();
            for (int a = 1; a <= 4; a++) {
                for (int b = 1; b <= 3; b++) {
                    jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                            .append(b).append("=\", \"answer\": \"").append(a + b).append("\"}\n");
                }
            }
            Files.writeString(data, jsonl);
        }
        Path yaml = dir.resolve(file + ".yaml");
        Files.writeString(yaml, """
                name: %s
                algorithm: sft
                seed: 7
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                data:
                  path: %s
                  batch_size: 6
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 8}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                checkpoint: {every: %d, keep: 1}
                plan:
                  mode: manual
                  calls:
                    actor_train: %s
                spark:
                  master: local[4]
                """.formatted(name, iterations, out, SftTrainingTest.TINY_LLAMA, data, checkpointEvery, actorTrain));
        return new RunConfigReader(new Configuration()).read(yaml.toString());
    }

    private static String train(RunConfig config) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, config, new PrintStream(sink, true, StandardCharsets.UTF_8));
        } finally {
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }
}
