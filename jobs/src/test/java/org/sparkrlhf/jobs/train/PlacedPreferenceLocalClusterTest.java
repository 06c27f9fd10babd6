package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GR-DPO on real executor JVMs ({@code local-cluster}: two executors of two CPU slots, devices 0, 1
 * on the first and 2, 3 on the second) with a plan whose calls have different layouts:
 * <pre>
 *   ref_inf      tp2        on 2,3      (the frozen reference, tensor-sharded on the second executor)
 *   actor_train  dp2 x pp2  on 0,1,2,3  with 2 micro-batches (a replica of two pipeline stages on each executor)
 * </pre>
 * and the held-out evaluation on those placements (the actor on actor_train's, the reference on
 * ref_inf's). The data-parallel ranks are in different JVMs, so the group-robust step's per-group
 * loss sums and pair counts (all-reduced before the weights' update) and the gradients cross
 * executors. Over 2 iterations on 12 of the shipped pairs (all three groups, 6 / 4 / 2) with 6
 * held-out pairs, the per-iteration loss, margin, accuracy, group weights and group losses, the
 * held-out losses and accuracies per group, overall and the worst group's (before training and after
 * each iteration), and the final weights equal those of the single-process run (Spark local[1], both
 * calls on device 0) with the same seed.
 *
 * <p>Tolerances: the runs compute the same sums in other orders (tensor parallelism adds partial
 * products after an all-reduce, pipeline micro-batches and data-parallel ranks add the gradients of
 * the batch's pieces in other orders), so everything differs in the last bits of float. Measured
 * (the test prints them): loss/actor 1.2e-7, margins 1.3e-7, group losses 1.6e-7, held-out losses
 * 1.8e-7, group weights 3.1e-8, final weights 4.6e-6. Asserted: 1e-5 on figures of order 1 (~100
 * float ulps; a pair lost or counted twice, a wrong group sum or weight moves them by 1e-2 and more)
 * and 5e-5 on weights (lr 1e-3 with AdamW: a lost or doubled micro-batch moves weights by ~lr).
 * Accuracies count margins above zero and are asserted equal, except at the initial policy: it is
 * the reference, so its margins are exactly 0 in the single-process run (one model, one device) and
 * rounding noise of either sign in the placed run; the held-out accuracy before training and the
 * training accuracy of iteration 1 are not compared.
 */
@Tag("local-cluster")
@Tag("one-spark-line") // placed calls on executors: PlacedGrpo/PlacedPpo cover that on both lines
class PlacedPreferenceLocalClusterTest {
    private static final int ITERATIONS = 2;
    private static final List<String> GROUPS = List.of("concise", "explained", "boxed");
    /** Training pairs per group (the shipped set's 150 / 90 / 60 in small) and held-out pairs per group. */
    private static final Map<String, Integer> TRAIN = Map.of("concise", 6, "explained", 4, "boxed", 2);
    private static final int HELD_OUT = 2;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 420, unit = TimeUnit.SECONDS)
    void placedRunMatchesTheSingleProcessRun() throws Exception {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null) {
            throw new IllegalStateException("SPARK_HOME must be set (jobs/pom.xml sets it for surefire)");
        }
        Files.createDirectories(Path.of(sparkHome, "jars"));
        Path shipped = Path.of("../examples/data");
        Files.writeString(dir.resolve("train.jsonl"), subset(shipped.resolve("group-preferences.jsonl"), TRAIN));
        Files.writeString(dir.resolve("heldout.jsonl"), subset(shipped.resolve("group-preferences-heldout.jsonl"),
                Map.of("concise", HELD_OUT, "explained", HELD_OUT, "boxed", HELD_OUT)));
        Path single = dir.resolve("single");
        Path placed = dir.resolve("placed");
        PpoTrainingTest.JobLog.EVENTS.clear();
        String progress = PlacedPpoLocalClusterTest.train(config("placed", placed, """
                plan:
                  mode: manual
                  calls:
                    ref_inf: {devices: [2, 3], tp: 2}
                    actor_train: {devices: [0, 1, 2, 3], dp: 2, pp: 2, micro_batches: 2}
                """, "local-cluster[2,2,1024]",
                "spark.executor.extraClassPath: '" + System.getProperty("java.class.path") + "', "
                        + "spark.extraListeners: " + PpoTrainingTest.JobLog.class.getName() + ", "));
        assertTrue(progress.contains("plan (manual"), progress);
        List<String> events = List.copyOf(PpoTrainingTest.JobLog.EVENTS);

        List<String> trainFigures = new ArrayList<>(List.of("loss/actor", "train/margin"));
        List<String> evalFigures = new ArrayList<>(List.of("eval/loss", "eval/worst_group_loss"));
        for (String g : GROUPS) {
            trainFigures.add("train/group_weight/" + g);
            trainFigures.add("train/loss/" + g);
            evalFigures.add("eval/loss/" + g);
        }
        List<String> accuracies = new ArrayList<>(List.of("eval/accuracy", "eval/worst_group_accuracy"));
        GROUPS.forEach(g -> accuracies.add("eval/accuracy/" + g));

        // the single-process run, in the Spark application that then reads both runs' tables (one
        // application fewer to start on a slow machine)
        SparkSession spark = TestSpark.deltaSession("PlacedPreferenceLocalClusterTest", 1);
        Map<String, Double> largest = new TreeMap<>();
        try {
            train(spark, config("single", single, """
                    plan:
                      mode: manual
                      calls:
                        ref_inf: {devices: [0]}
                        actor_train: {devices: [0]}
                    """, "local[1]", ""));
            for (int i = 0; i <= ITERATIONS; i++) {
                Map<String, Double> s = PlacedPpoLocalClusterTest.metrics(spark, single, "single", i);
                Map<String, Double> p = PlacedPpoLocalClusterTest.metrics(spark, placed, "placed", i);
                List<String> names = new ArrayList<>(evalFigures);
                if (i > 0) {
                    names.addAll(trainFigures);
                    names.addAll(accuracies);
                }
                if (i > 1) {
                    // iteration 1's are at the initial policy, the reference itself: margins of 0
                    names.add("train/accuracy");
                }
                for (String name : names) {
                    double e = value(s, name, "single", i);
                    double g = value(p, name, "placed", i);
                    double tolerance = name.contains("accuracy") ? 0 : 1e-5;
                    assertEquals(e, g, tolerance, name + " of iteration " + i);
                    largest.merge(name.startsWith("eval/") ? name : name + " (train)", Math.abs(e - g), Math::max);
                }
                if (i > 0) {
                    System.out.printf("iteration %d: single %s%n", i, pick(s, trainFigures));
                }
                System.out.printf("iteration %d: held-out %s%n", i, pick(s, evalFigures));
                if (i > 0) {
                    List<PlanRow> plans = IterationTable.plans(spark, RunOutput.plansPath(placed))
                            .collectIteration("placed", i);
                    assertEquals(1, plans.size());
                    assertEquals(List.of("actor_train", "ref_inf"), plans.get(0).calls().stream()
                            .map(PlanRow.CallTiming::call).sorted().toList());
                }
            }
            // the comparisons are of a run that moved: the weights left their uniform start in the
            // direction of the groups' losses, and the held-out loss left log 2
            Map<String, Double> last = PlacedPpoLocalClusterTest.metrics(spark, single, "single", ITERATIONS);
            Map<String, Double> before = PlacedPpoLocalClusterTest.metrics(spark, single, "single", 0);
            double spread = 0;
            for (String g : GROUPS) {
                spread = Math.max(spread, Math.abs(value(last, "train/group_weight/" + g, "single", ITERATIONS) - 1.0 / 3));
            }
            assertTrue(spread > 1e-3, "the group weights moved: " + pick(last, trainFigures));
            assertEquals(Math.log(2), value(before, "eval/loss", "single", 0), 1e-6);
            assertTrue(Math.abs(value(last, "eval/loss", "single", ITERATIONS) - Math.log(2)) > 1e-3,
                    "the held-out loss moved: " + pick(last, evalFigures));
        } finally {
            spark.stop();
        }
        double weights = maxWeightDifference(single.resolve("final"), placed.resolve("final"));
        largest.put("final weights", weights);
        System.out.printf("largest differences %s%n", largest);
        assertTrue(weights < 5e-5, "final weights differ by " + weights);

        // every call ran on its own layout, every iteration, and the held-out evaluations on those placements
        for (int i = 1; i <= ITERATIONS; i++) {
            for (String call : List.of("ref_inf iteration " + i + " (gr-dpo, dp1.tp2.pp1)",
                    "actor_train iteration " + i + " (gr-dpo, dp2.tp1.pp2)")) {
                assertTrue(events.contains("start " + call) && events.contains("end " + call), call + " in " + events);
            }
        }
        for (int i = 0; i <= ITERATIONS; i++) {
            String eval = "eval actor iteration " + i + " (dp2.tp1.pp2)";
            assertTrue(events.contains("start " + eval), eval + " in " + events);
        }
        assertTrue(events.contains("start eval ref iteration 0 (dp1.tp2.pp1)"), events.toString());
    }

    /** The first {@code perGroup.get(g)} lines of each group g of a JSONL file of pairs. */
    private static String subset(Path jsonl, Map<String, Integer> perGroup) throws Exception {
        Map<String, Integer> taken = new HashMap<>();
        StringBuilder out = new StringBuilder();
        for (String line : Files.readAllLines(jsonl)) {
            for (Map.Entry<String, Integer> g : perGroup.entrySet()) {
                if (line.contains("\"group\":\"" + g.getKey() + "\"") && taken.merge(g.getKey(), 1, Integer::sum) <= g.getValue()) {
                    out.append(line).append('\n');
                }
            }
        }
        for (Map.Entry<String, Integer> g : perGroup.entrySet()) {
            assertTrue(taken.getOrDefault(g.getKey(), 0) >= g.getValue(), jsonl + " has too few " + g.getKey() + " pairs");
        }
        return out.toString();
    }

    private static Map<String, Double> pick(Map<String, Double> metrics, List<String> names) {
        Map<String, Double> out = new TreeMap<>();
        names.forEach(n -> out.put(n, metrics.get(n)));
        return out;
    }

    private static double value(Map<String, Double> metrics, String name, String run, int iteration) {
        Double v = metrics.get(name);
        if (v == null) {
            throw new AssertionError(run + " iteration " + iteration + " has no metric " + name + ": " + metrics.keySet());
        }
        return v;
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

    private Path config(String name, Path out, String plan, String master, String extraConf) throws Exception {
        Path config = dir.resolve(name + ".yaml");
        Files.writeString(config, """
                name: %s
                algorithm: gr-dpo
                seed: 3
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                data: {path: %s, eval_path: %s, batch_size: 8, eval_every: 1, max_prompt_tokens: 24}
                generation: {max_new_tokens: 16}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0, grad_clip: 1.0}
                gr-dpo: {beta: 0.1, group_step_size: 0.5}
                %s
                spark:
                  master: %s
                  conf: {%sspark.rlhf.comm.timeoutMs: "120000", spark.ui.enabled: "false",
                         spark.databricks.delta.snapshotPartitions: "1",
                         spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(name, ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                dir.resolve("train.jsonl"), dir.resolve("heldout.jsonl"), plan, master, extraConf));
        return config;
    }

    private static void train(SparkSession spark, Path config) {
        long start = System.nanoTime();
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        try {
            TrainCommand.train(spark, new RunConfigReader(new Configuration()).read(config.toString()),
                    new PrintStream(progress, true, StandardCharsets.UTF_8));
        } finally {
            System.out.print(progress.toString(StandardCharsets.UTF_8));
            System.out.printf("%s: %.1f s%n", config.getFileName(), (System.nanoTime() - start) / 1e9);
        }
    }
}
