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
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PPO with a reward model on real executor JVMs ({@code local-cluster}: two executors of two CPU
 * slots, devices 0, 1 on the first and 2, 3 on the second) with a plan that puts every call on its
 * own devices and layout:
 * <pre>
 *   actor_gen     dp2        on 0,1     (the actor moves here from its train layout every iteration)
 *   reward_inf    tp2        on 0,1     \ disjoint: run at the same time
 *   ref_inf       tp2        on 2,3     /
 *   critic_inf    pp2        on 0,1     (after reward_inf, which holds 0,1; the critic moves here from 2,3)
 *   actor_train   tp2 x pp2  on 0,1,2,3 with 2 micro-batches (the actor's home)
 *   critic_train  tp2        on 2,3     with 2 micro-batches (the critic's home)
 * </pre>
 * The rollouts (tokens exactly; rewards, logprobs, reference logprobs, values, per-token rewards,
 * advantages, returns) and the iteration's losses, KL and KL coefficient equal those of the
 * single-process run (Spark local[1], every call on one device) with the same seed, over iterations
 * that sample from the trained actor and read values from the trained critic. The run's Spark jobs
 * show reward_inf and ref_inf running at one time, critic_inf waiting for reward_inf, and the actor
 * and the critic moved between their train and inference layouts by the reallocation stages every
 * iteration.
 *
 * <p>Tolerances: the runs compute the same sums in other orders. Tensor parallelism adds the partial
 * products of o_proj / down_proj and the vocabulary-parallel softmax pieces after an all-reduce,
 * pipeline parallelism and micro-batches add the gradients of the pieces of a mini-batch in another
 * order, and a data-parallel gradient is the sum of the ranks' partial sums; so activations, the
 * trained weights and everything computed from them differ in the last bits of float (measured:
 * at most 1e-6 on logprobs, reference logprobs and values, 2.2e-6 on the whitened advantages).
 * 1e-4 absolute on quantities of order 1 is ~1000 float ulps: far above rounding, far below a real
 * difference (a wrong slice, a lost micro-batch or gradient changes them at 1e-2 and more). The losses are means over steps of small numbers, compared at
 * 1e-5. Sampling draws from counter-based random numbers per sequence id, so the tokens are the
 * same unless a uniform draw falls within ~1e-7 of a cumulative probability boundary.
 */
@Tag("local-cluster")
class PlacedPpoLocalClusterTest {
    private static final int ITERATIONS = 2;
    private static final int BATCH = 4;
    private static final List<String> CALLS = List.of("actor_gen", "reward_inf", "ref_inf", "critic_inf",
            "actor_train", "critic_train");

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
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                        .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path single = dir.resolve("single");
        Path placed = dir.resolve("placed");
        StringBuilder onOneDevice = new StringBuilder("plan:\n  mode: manual\n  calls:\n");
        for (String call : CALLS) {
            onOneDevice.append("    ").append(call).append(": {devices: [0]}\n");
        }
        train(config("single", single, onOneDevice.toString(), "local[1]", ""));
        PpoTrainingTest.JobLog.EVENTS.clear();
        String progress = train(config("placed", placed, """
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0, 1], tp: 2}
                    ref_inf: {devices: [2, 3], tp: 2}
                    critic_inf: {devices: [0, 1], pp: 2}
                    actor_train: {devices: [0, 1, 2, 3], tp: 2, pp: 2, micro_batches: 2}
                    critic_train: {devices: [2, 3], tp: 2, micro_batches: 2}
                """, "local-cluster[2,2,1024]",
                "spark.executor.extraClassPath: '" + System.getProperty("java.class.path") + "', "
                        + "spark.extraListeners: " + PpoTrainingTest.JobLog.class.getName() + ", "));
        assertTrue(progress.contains("plan (manual"), progress);
        List<String> events = List.copyOf(PpoTrainingTest.JobLog.EVENTS);

        SparkSession spark = TestSpark.deltaSession("PlacedPpoLocalClusterTest", 1);
        try {
            for (int i = 1; i <= ITERATIONS; i++) {
                Map<String, RolloutRow> expected = byPrompt(IterationTable.rollouts(spark,
                        RunOutput.rolloutsPath(single)).collectIteration("single", i));
                Map<String, RolloutRow> got = byPrompt(IterationTable.rollouts(spark,
                        RunOutput.rolloutsPath(placed)).collectIteration("placed", i));
                assertEquals(BATCH, expected.size());
                assertEquals(expected.keySet(), got.keySet(), "iteration " + i + "'s prompts");
                Map<String, Double> largest = new TreeMap<>();
                for (Map.Entry<String, RolloutRow> entry : expected.entrySet()) {
                    RolloutRow e = entry.getValue();
                    RolloutRow g = got.get(entry.getKey());
                    String where = "iteration " + i + " prompt " + entry.getKey();
                    assertArrayEquals(e.responseTokens(), g.responseTokens(), where);
                    assertEquals(e.reward(), g.reward(), 1e-4, where + " reward");
                    largest.merge("reward", Math.abs(e.reward() - g.reward()), Math::max);
                    compare(largest, "logprobs", e.logprobs(), g.logprobs(), where);
                    compare(largest, "ref_logprobs", e.refLogprobs(), g.refLogprobs(), where);
                    compare(largest, "values", e.values(), g.values(), where);
                    compare(largest, "token_rewards", e.tokenRewards(), g.tokenRewards(), where);
                    compare(largest, "advantages", e.advantages(), g.advantages(), where);
                    compare(largest, "returns", e.returns(), g.returns(), where);
                    assertEquals(e.policyVersion(), g.policyVersion(), where);
                }
                Map<String, Double> s = metrics(spark, single, "single", i);
                Map<String, Double> p = metrics(spark, placed, "placed", i);
                for (String name : List.of("loss/actor", "loss/critic", "kl/k3", "kl/coef", "reward/mean",
                        "value/mean", "return/mean")) {
                    double e = value(s, name, "single", i);
                    double g = value(p, name, "placed", i);
                    assertEquals(e, g, 1e-5, name + " of iteration " + i);
                    largest.merge(name, Math.abs(e - g), Math::max);
                }
                System.out.printf("iteration %d: largest differences %s%n", i, largest);
                // both trained models were moved to another layout for their next calls, every iteration
                assertTrue(p.containsKey("seconds/realloc"), "iteration " + i + " reallocated: " + p.keySet());
                List<PlanRow> plans = IterationTable.plans(spark, RunOutput.plansPath(placed))
                        .collectIteration("placed", i);
                assertEquals(1, plans.size());
                assertTrue(plans.get(0).planJson().contains("\"critic_train\""), plans.get(0).planJson());
                for (String call : CALLS) {
                    assertTrue(plans.get(0).calls().stream().anyMatch(c -> c.call().equals(call)),
                            call + " in " + plans.get(0).calls());
                }
                // reward_inf and ref_inf, on disjoint devices, were both running at one time (the runtime's
                // own timeline: Spark's job events can miss an overlap of calls this short) ...
                assertTrue(p.get("timeline/reward_inf/start") < p.get("timeline/ref_inf/end")
                        && p.get("timeline/ref_inf/start") < p.get("timeline/reward_inf/end"), p.toString());
                // and critic_inf, on reward_inf's devices, waited for it
                assertTrue(p.get("timeline/critic_inf/start") >= p.get("timeline/reward_inf/end"), p.toString());
                int rewardStart = events.indexOf("start reward_inf iteration " + i + " (ppo, dp1.tp2.pp1)");
                int refStart = events.indexOf("start ref_inf iteration " + i + " (ppo, dp1.tp2.pp1)");
                int criticStart = events.indexOf("start critic_inf iteration " + i + " (ppo, dp1.tp1.pp2)");
                assertTrue(rewardStart >= 0 && refStart >= 0 && criticStart >= 0, events.toString());
            }
            // the second iteration sampled from a trained actor: its logprobs left the reference's
            // by far more than the tolerance (the first iteration's policy is the reference itself)
            double klBefore = value(metrics(spark, single, "single", 1), "kl/k3", "single", 1);
            double klAfter = value(metrics(spark, single, "single", 2), "kl/k3", "single", 2);
            assertTrue(Math.abs(klBefore) < 1e-6 && klAfter > 1e-3, "the actor was trained between the iterations: kl "
                    + klBefore + ", then " + klAfter);
        } finally {
            spark.stop();
        }
        // the trained models moved from their train layouts to their other calls' (iteration 1: the
        // first actor_gen and critic_inf loaded them from their folders; 2 optimizer steps per
        // iteration), and at the end to one device each for the final models
        List<String> moves = events.stream().filter(e -> e.startsWith("start reallocate")).toList();
        assertEquals(List.of(
                "start reallocate actor v0: dp2.tp1.pp1@0,1 -> dp1.tp2.pp2@0,1,2,3 (before actor_train)",
                "start reallocate critic v0: dp1.tp1.pp2@0,1 -> dp1.tp2.pp1@2,3 (before critic_train)",
                "start reallocate actor v2: dp1.tp2.pp2@0,1,2,3 -> dp2.tp1.pp1@0,1 (before actor_gen)",
                "start reallocate critic v2: dp1.tp2.pp1@2,3 -> dp1.tp1.pp2@0,1 (before critic_inf)",
                "start reallocate actor v4: dp1.tp2.pp2@0,1,2,3 -> dp1.tp1.pp1@0 (before actor_whole)",
                "start reallocate critic v4: dp1.tp2.pp1@2,3 -> dp1.tp1.pp1@2 (before critic_whole)"), moves);
    }

    private static double value(Map<String, Double> metrics, String name, String run, int iteration) {
        Double v = metrics.get(name);
        if (v == null) {
            throw new AssertionError(run + " iteration " + iteration + " has no metric " + name + ": " + metrics.keySet());
        }
        return v;
    }

    /** Asserts equal arrays within 1e-4 and keeps the largest difference under {@code name}. */
    private static void compare(Map<String, Double> largest, String name, float[] expected, float[] got, String where) {
        assertArrayEquals(expected, got, 1e-4f, where + " " + name);
        for (int t = 0; t < expected.length; t++) {
            largest.merge(name, (double) Math.abs(expected[t] - got[t]), Math::max);
        }
    }

    private Path config(String name, Path out, String plan, String master, String extraConf) throws Exception {
        Path config = dir.resolve(name + ".yaml");
        Files.writeString(config, """
                name: %s
                algorithm: ppo
                seed: 7
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                  reward: {path: %s}
                data: {path: %s, batch_size: %d, eval_size: 0, max_prompt_tokens: 16}
                generation: {max_new_tokens: 3, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                ppo: {epochs: 1, mini_batches: 2, gamma: 0.9, lambda: 0.8, critic_lr: 1.0e-3,
                      kl: {type: adaptive, coef: 0.2, target: 0.5, horizon: 100, estimator: k3}}
                %s
                spark:
                  master: %s
                  conf: {%sspark.rlhf.comm.timeoutMs: "120000", spark.ui.enabled: "false",
                         spark.databricks.delta.snapshotPartitions: "1",
                         spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(name, ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                PpoTrainingTest.TINY_REWARD, PpoTrainingTest.TINY_REWARD, dir.resolve("prompts.jsonl"), BATCH, plan,
                master, extraConf));
        return config;
    }

    /** One iteration's rows by prompt id (PPO samples one response per prompt). */
    private static Map<String, RolloutRow> byPrompt(List<RolloutRow> rows) {
        Map<String, RolloutRow> out = new TreeMap<>();
        for (RolloutRow r : rows) {
            assertEquals(null, out.put(r.promptId(), r), "two rows for " + r.promptId());
        }
        return out;
    }

    /** The figures of a run's iteration by name (PlacedPreferenceLocalClusterTest reads its runs with it too). */
    static Map<String, Double> metrics(SparkSession spark, Path out, String run, int iteration) {
        Map<String, Double> byName = new HashMap<>();
        for (MetricRow m : IterationTable.metrics(spark, RunOutput.metricsPath(out)).collectIteration(run, iteration)) {
            byName.put(m.name(), m.value());
        }
        return byName;
    }

    /** Runs {@code spark-rlhf train config}, its progress teed to the test's output; the progress. */
    static String train(Path config) {
        long start = System.nanoTime();
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        // progress goes to the test's output as it comes (a slow machine shows where the run is)
        OutputStream tee = new OutputStream() {
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
        System.out.printf("%s: %.1f s%n", config.getFileName(), (System.nanoTime() - start) / 1e9);
        System.out.flush();
        String progress = stdout.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
        return progress;
    }
}
