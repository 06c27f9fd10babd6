package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GRPO on real executor JVMs ({@code local-cluster}: two executors of two CPU slots) with a plan that
 * puts the calls on different executors and changes dp and tp between them (actor_gen data parallel
 * over the first executor's two slots, ref_inf tensor parallel over the second's, actor_train data x
 * tensor parallel over all four, in 2 mini-batches whose rows do not depend on the layout), so the
 * actor is reallocated between its train and generate layouts every iteration: the rollouts (tokens exactly, logprobs) and losses equal those of
 * the single-process run (Spark local[1], every call on one rank) with the same seed. The tiny random
 * model never earns a reward on its own, so the reference model is a perturbed copy of the actor:
 * the KL term then trains the actor, and the second iteration samples from trained weights.
 *
 * <p>Tolerances: the runs compute the same sums in other orders. Tensor parallelism adds the partial
 * products of o_proj / down_proj and the vocabulary-parallel pieces after an all-reduce (the whole
 * model adds along one dot product), and a data-parallel gradient is the sum of the ranks' partial
 * sums; so activations, logprobs and the trained weights differ in the last bits of float, and the
 * CPU engine's OpenBLAS kernels block each product by its shape, which also changes with the layout
 * (up to 1.1e-4 measured at iteration 2). {@link #TOLERANCE} absolute on logprobs and losses of
 * order 1: far above rounding, far below any real difference (a wrong slice or a lost gradient
 * changes them at 1e-2 and more).
 * Sampling draws from counter-based random numbers per sequence id, so the tokens are the same
 * unless a uniform draw falls within ~1e-7 of a cumulative probability boundary.
 */
@Tag("local-cluster")
class PlacedGrpoLocalClusterTest {
    /** Absolute tolerance on logprobs and losses between the placed and the single-process run. */
    static final float TOLERANCE = 5e-4f;

    private static final int ITERATIONS = 2;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void placedRunMatchesTheSingleProcessRun() throws Exception {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null) {
            throw new IllegalStateException("SPARK_HOME must be set (jobs/pom.xml sets it for surefire)");
        }
        Files.createDirectories(Path.of(sparkHome, "jars"));
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path ref = PerturbedReference.under(dir);
        Path single = dir.resolve("single");
        Path placed = dir.resolve("placed");
        train(config("single", single, ref, "plan: {mode: baseline}", "local[1]", ""));
        String progress = train(config("placed", placed, ref, """
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [2, 3], tp: 2}
                    actor_train: {devices: [0, 1, 2, 3], dp: 2, tp: 2, micro_batches: 2}
                """, "local-cluster[2,2,1024]",
                "spark.executor.extraClassPath: '" + System.getProperty("java.class.path") + "', "));
        assertTrue(progress.contains("plan (manual"), progress);
        assertTrue(progress.contains("| realloc "), "the actor moves between its layouts: " + progress);

        SparkSession spark = TestSpark.deltaSession("PlacedGrpoLocalClusterTest", 1);
        try {
            for (int i = 1; i <= ITERATIONS; i++) {
                List<RolloutRow> expected = sorted(IterationTable.rollouts(spark, RunOutput.rolloutsPath(single))
                        .collectIteration("single", i));
                List<RolloutRow> got = sorted(IterationTable.rollouts(spark, RunOutput.rolloutsPath(placed))
                        .collectIteration("placed", i));
                assertEquals(expected.size(), got.size());
                double maxLogprobDiff = 0;
                for (int s = 0; s < expected.size(); s++) {
                    for (int t = 0; t < Math.min(expected.get(s).logprobs().length, got.get(s).logprobs().length); t++) {
                        maxLogprobDiff = Math.max(maxLogprobDiff, Math.abs(expected.get(s).logprobs()[t] - got.get(s).logprobs()[t]));
                    }
                }
                System.out.printf("iteration %d: largest logprob difference %.3g%n", i, maxLogprobDiff);
                for (int s = 0; s < expected.size(); s++) {
                    RolloutRow e = expected.get(s);
                    RolloutRow g = got.get(s);
                    String where = "iteration " + i + " sample " + s + " of " + e.promptId();
                    assertEquals(e.promptId(), g.promptId(), where);
                    assertArrayEquals(e.responseTokens(), g.responseTokens(), where);
                    assertArrayEquals(e.logprobs(), g.logprobs(), TOLERANCE, where);
                    assertArrayEquals(e.refLogprobs(), g.refLogprobs(), TOLERANCE, where);
                    assertEquals(e.reward(), g.reward(), where);
                }
                assertEquals(metric(spark, single, "single", i, "loss/actor"),
                        metric(spark, placed, "placed", i, "loss/actor"), TOLERANCE, "loss of iteration " + i);
                if (i == ITERATIONS) {
                    // the KL term trained the actor away from the reference: the second iteration samples from
                    // trained weights (the first iteration's KL is the perturbed reference's alone)
                    assertTrue(metric(spark, single, "single", i, "kl/k3") > 10 * metric(spark, single, "single", 1, "kl/k3"),
                            "the actor was trained between the iterations");
                }
                assertEquals(metric(spark, single, "single", i, "kl/k3"),
                        metric(spark, placed, "placed", i, "kl/k3"), TOLERANCE / 10, "KL of iteration " + i);
                List<PlanRow> plans = IterationTable.plans(spark, RunOutput.plansPath(placed)).collectIteration("placed", i);
                assertEquals(1, plans.size());
                assertTrue(plans.get(0).planJson().contains("\"actor_train\""), plans.get(0).planJson());
                assertEquals(List.of("actor_gen", "ref_inf", "actor_train"),
                        plans.get(0).calls().stream().map(PlanRow.CallTiming::call).toList());
            }
        } finally {
            spark.stop();
        }
    }

    private Path config(String name, Path out, Path ref, String plan, String master, String extraConf) throws Exception {
        Path config = dir.resolve(name + ".yaml");
        Files.writeString(config, """
                name: %s
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
                  batch_size: 4
                  eval_size: 0
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 3, temperature: 1.0}
                optimizer: {lr: 1.0e-2, weight_decay: 0.0}
                grpo: {group_size: 2, kl_coef: 1.0, clip_ratio: 0.2, mini_batches: 2}
                %s
                spark:
                  master: %s
                  conf: {%sspark.rlhf.comm.timeoutMs: "120000", spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(name, ITERATIONS, out, SftTrainingTest.TINY_LLAMA, ref,
                dir.resolve("prompts.jsonl"), plan, master, extraConf));
        return config;
    }

    /** One iteration's samples, ordered by prompt and then response tokens (the table keeps no order). */
    private static List<RolloutRow> sorted(List<RolloutRow> rows) {
        List<RolloutRow> out = new ArrayList<>(rows);
        out.sort(Comparator.comparing(RolloutRow::promptId).thenComparing(r -> Arrays.toString(r.responseTokens())));
        return out;
    }

    private static double metric(SparkSession spark, Path out, String run, int iteration, String name) {
        Map<String, Double> byName = new TreeMap<>();
        for (MetricRow m : IterationTable.metrics(spark, RunOutput.metricsPath(out)).collectIteration(run, iteration)) {
            byName.put(m.name(), m.value());
        }
        Double v = byName.get(name);
        if (v == null) {
            throw new AssertionError(run + " iteration " + iteration + " has no metric " + name + ": " + byName.keySet());
        }
        return v;
    }

    private static String train(Path config) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        // progress goes to the test's output as it comes (a slow machine shows where the run is)
        java.io.OutputStream tee = new java.io.OutputStream() {
            @Override
            public void write(int b) {
                stdout.write(b);
                System.out.write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                stdout.write(b, off, len);
                System.out.write(b, off, len);
            }
        };
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(tee, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        System.out.flush();
        String progress = stdout.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
        return progress;
    }
}
