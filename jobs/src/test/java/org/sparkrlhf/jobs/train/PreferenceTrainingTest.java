package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RW, DPO, IPO and GR-IPO end to end, embedded, on a slice of the shipped group-preference pairs
 * with a held-out set. Before training the policy is the reference, so every held-out pair's
 * implicit reward margin is 0: DPO's loss is ln 2 and IPO's (1 / (2 beta))^2 on every pair, and no
 * pair counts as correct. GR-IPO logs a weight per group each iteration (summing to 1) and the
 * groups' losses, which at iteration 1 are IPO's loss at a zero margin. RW's final model is a
 * reward model that a GRPO run config takes as models.reward.
 */
@Tag("end-to-end")
@Tag("one-spark-line") // the preference losses in a run: what reads pairs through Spark, RoundTripTest covers on both lines
class PreferenceTrainingTest {
    private static final Path TINY = SftTrainingTest.TINY_LLAMA;
    private static final Path PAIRS = Path.of("../examples/data/group-preferences.jsonl").toAbsolutePath().normalize();
    private static final Path HELD_OUT = Path.of("../examples/data/group-preferences-heldout.jsonl").toAbsolutePath()
            .normalize();
    private static final List<String> GROUPS = List.of("boxed", "concise", "explained");

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void preferenceAlgorithmsTrainAndEvaluatePerGroup() throws Exception {
        // 20 pairs of each group for training, 8 of each held out
        Files.write(dir.resolve("pairs.jsonl"), every(Files.readAllLines(PAIRS), 20));
        Files.write(dir.resolve("heldout.jsonl"), every(Files.readAllLines(HELD_OUT), 8));

        Map<String, Map<Long, Double>> dpo = run("dpo", "dpo: {beta: 0.1}");
        assertEquals(Math.log(2), dpo.get("eval/loss").get(0L), 1e-6);
        assertEquals(0.0, dpo.get("eval/accuracy").get(0L));
        for (String g : GROUPS) {
            assertEquals(Math.log(2), dpo.get("eval/loss/" + g).get(0L), 1e-6, g);
        }
        assertEquals(Math.log(2), dpo.get("eval/worst_group_loss").get(0L), 1e-6);
        // one step per iteration, from a zero margin: the loss of the first step is ln 2 too
        assertEquals(Math.log(2), dpo.get("loss/actor").get(1L), 1e-6);
        assertNotEquals(dpo.get("eval/loss").get(0L), dpo.get("eval/loss").get(2L));

        Map<String, Map<Long, Double>> ipo = run("ipo", "ipo: {beta: 0.1}");
        assertEquals(25.0, ipo.get("eval/loss").get(0L), 1e-4);
        assertEquals(25.0, ipo.get("loss/actor").get(1L), 1e-4);

        Map<String, Map<Long, Double>> grIpo = run("gr-ipo", "gr-ipo: {beta: 0.1, group_step_size: 0.05}");
        for (long i = 1; i <= 2; i++) {
            double sum = 0;
            for (String g : GROUPS) {
                sum += grIpo.get("train/group_weight/" + g).get(i);
            }
            assertEquals(1.0, sum, 1e-6, "iteration " + i);
        }
        for (String g : GROUPS) {
            if (grIpo.containsKey("train/loss/" + g) && grIpo.get("train/loss/" + g).containsKey(1L)) {
                assertEquals(25.0, grIpo.get("train/loss/" + g).get(1L), 1e-4, g);
            }
        }
        assertEquals(25.0, grIpo.get("eval/worst_group_loss").get(0L), 1e-4);

        Map<String, Map<Long, Double>> rw = run("rw", "");
        assertTrue(rw.get("loss/reward").get(1L) > 0);
        assertTrue(rw.containsKey("eval/worst_group_accuracy"));
        // the trained reward model is what PPO and GRPO read as models.reward
        Path grpo = dir.resolve("grpo-with-rw.yaml");
        Files.writeString(grpo, """
                name: grpo-with-rw
                algorithm: grpo
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  reward: {path: %s}
                data: {path: %s}
                """.formatted(dir.resolve("grpo-out"), TINY, TINY, dir.resolve("rw").resolve("final"),
                dir.resolve("pairs.jsonl")));
        new RunConfigReader(new Configuration()).read(grpo.toString());
    }

    /** The first {@code n} pairs of each group. */
    private static List<String> every(List<String> lines, int n) {
        Map<String, Integer> taken = new HashMap<>();
        return lines.stream().filter(l -> {
            String group = l.replaceAll(".*\"group\":\"([a-z]+)\".*", "$1");
            return taken.merge(group, 1, Integer::sum) <= n;
        }).toList();
    }

    private Map<String, Map<Long, Double>> run(String algorithm, String section) throws Exception {
        Path out = dir.resolve(algorithm);
        Path config = dir.resolve(algorithm + ".yaml");
        boolean rw = algorithm.equals("rw");
        Files.writeString(config, """
                name: %s-test
                algorithm: %s
                seed: 3
                iterations: 2
                output: %s
                models:
                %s
                data: {path: %s, eval_path: %s, batch_size: 8, eval_every: 2, max_prompt_tokens: 24}
                generation: {max_new_tokens: 40}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                %s
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(algorithm, algorithm, out,
                rw ? "  reward: {path: " + TINY + "}" : "  actor: {path: " + TINY + "}\n  ref: {path: " + TINY + "}",
                dir.resolve("pairs.jsonl"), dir.resolve("heldout.jsonl"), section));
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        System.out.print(stdout.toString(StandardCharsets.UTF_8));
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8));
        SparkSession spark = TestSpark.deltaSession("PreferenceTrainingTest", 1);
        try {
            Map<String, Map<Long, Double>> metrics = new HashMap<>();
            for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).collectAsList()) {
                metrics.computeIfAbsent(r.getAs("name"), k -> new HashMap<>())
                        .put(((Number) r.getAs("iteration")).longValue(), r.<Double>getAs("value"));
            }
            return metrics;
        } finally {
            spark.stop();
        }
    }
}
