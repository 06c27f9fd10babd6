package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RLOO and ReMax end to end, embedded (local[2], every call data parallel on both devices), from the
 * tiny fixture models, with the fixture reward model scoring the answers: its scores differ from
 * answer to answer, so the baselines are non-trivial (the arithmetic reward function gives the
 * fixture's random answers 0 each, which would make every advantage 0 whatever the baseline). The
 * advantages in the rollouts table are recomputed from the table's rewards (RLOO: each sample's
 * reward less the mean reward of the other samples of its prompt in its iteration), and from the
 * greedy answer that the CPU engine decodes from the same policy version and the reward model's score
 * of it (ReMax: reward less that score).
 */
class RlooAndRemaxTrainingTest {
    private static final int ITERATIONS = 2;
    private static final int BATCH = 2;
    private static final int GROUP = 4;
    private static final int MAX_NEW = 4;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void rlooAdvantagesAreLeaveOneOutBaselines() throws Exception {
        Path out = dir.resolve("rloo");
        train(config("rloo", out, "rloo: {group_size: %d, kl_coef: 0.04, clip_ratio: 0.2}".formatted(GROUP), ""));
        SparkSession spark = TestSpark.deltaSession("RlooAndRemaxTrainingTest", 1);
        try {
            int nonZero = 0;
            for (int i = 1; i <= ITERATIONS; i++) {
                Map<String, List<RolloutRow>> byPrompt = byPrompt(rollouts(spark, out, "rloo", i));
                assertEquals(BATCH, byPrompt.size(), "iteration " + i);
                for (Map.Entry<String, List<RolloutRow>> e : byPrompt.entrySet()) {
                    List<RolloutRow> group = e.getValue();
                    assertEquals(GROUP, group.size(), e.getKey());
                    double sum = group.stream().mapToDouble(RolloutRow::reward).sum();
                    for (RolloutRow r : group) {
                        double expected = r.reward() - (sum - r.reward()) / (GROUP - 1);
                        assertSameEverywhere(expected, r.advantages(), "iteration " + i + " " + e.getKey());
                        nonZero += Math.abs(expected) > 1e-4 ? 1 : 0;
                        assertEquals(i - 1, r.policyVersion());
                    }
                }
            }
            assertTrue(nonZero > 0, "the reward model's scores differ within a group");
        } finally {
            spark.stop();
        }
    }

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void remaxBaselineIsTheGreedyAnswersReward() throws Exception {
        Path out = dir.resolve("remax");
        train(config("remax", out, "remax: {kl_coef: 0.04, clip_ratio: 0.2}", "checkpoint: {every: 1}\n"));
        SpecialTokens special = SpecialTokens.read(SftTrainingTest.TINY_LLAMA);
        SparkSession spark = TestSpark.deltaSession("RlooAndRemaxTrainingTest", 1);
        try (CpuBackend backend = new CpuBackend();
             LlamaModel reward = LlamaModel.load(backend, PpoTrainingTest.TINY_REWARD)) {
            for (int i = 1; i <= ITERATIONS; i++) {
                // the policy that sampled iteration i: the fixture, then the one checkpointed after iteration i - 1
                Path policy = i == 1 ? SftTrainingTest.TINY_LLAMA
                        : out.resolve("checkpoints").resolve(String.format("iter-%08d", i - 1)).resolve("actor");
                Map<String, List<RolloutRow>> byPrompt = byPrompt(rollouts(spark, out, "remax", i));
                assertEquals(BATCH, byPrompt.size(), "iteration " + i);
                try (LlamaModel actor = LlamaModel.load(backend, policy); Generator generator = new Generator(actor)) {
                    for (Map.Entry<String, List<RolloutRow>> e : byPrompt.entrySet()) {
                        assertEquals(1, e.getValue().size(), "ReMax samples one answer per prompt");
                        RolloutRow r = e.getValue().get(0);
                        assertEquals(i - 1, r.policyVersion());
                        int[] greedy = generator.generate(new int[][]{r.promptTokens()},
                                Generator.Options.greedy(MAX_NEW, new int[]{special.eos()}, special.pad())).tokens()[0];
                        int[] row = Arrays.copyOf(r.promptTokens(), r.promptTokens().length + greedy.length);
                        System.arraycopy(greedy, 0, row, r.promptTokens().length, greedy.length);
                        double baseline = reward.scores(Batch.rightPadded(new int[][]{row}, special.pad()))[0];
                        assertSameEverywhere(r.reward() - baseline, r.advantages(), "iteration " + i + " " + e.getKey());
                        System.out.printf("iteration %d %s: reward %.6f, greedy answer %s scores %.6f%n", i,
                                e.getKey(), r.reward(), Arrays.toString(greedy), baseline);
                    }
                }
            }
        } finally {
            spark.stop();
        }
    }

    /** Every token of the answer carries the answer's advantage. */
    private static void assertSameEverywhere(double expected, float[] advantages, String where) {
        float[] all = new float[advantages.length];
        Arrays.fill(all, (float) expected);
        assertArrayEquals(all, advantages, 1e-4f, where + ": " + Arrays.toString(advantages) + " vs " + expected);
    }

    private static List<RolloutRow> rollouts(SparkSession spark, Path out, String run, int iteration) {
        return IterationTable.rollouts(spark, RunOutput.rolloutsPath(out)).collectIteration(run, iteration);
    }

    private static Map<String, List<RolloutRow>> byPrompt(List<RolloutRow> rows) {
        Map<String, List<RolloutRow>> out = new LinkedHashMap<>();
        for (RolloutRow r : rows) {
            out.computeIfAbsent(r.promptId(), k -> new ArrayList<>()).add(r);
        }
        return out;
    }

    private Path config(String algorithm, Path out, String section, String extra) throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q%d%d\", \"prompt\": \"%d+%d=\", \"reference\": \"%d\"}\n".formatted(a, b, a, b, a + b));
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path config = dir.resolve(algorithm + ".yaml");
        Files.writeString(config, """
                name: %s
                algorithm: %s
                seed: 11
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  reward: {path: %s}
                data: {path: %s, batch_size: %d, eval_size: 0, max_prompt_tokens: 16}
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 1.0e-2, weight_decay: 0.0}
                %s
                %splan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(algorithm, algorithm, ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                PpoTrainingTest.TINY_REWARD, dir.resolve("prompts.jsonl"), BATCH, MAX_NEW, section, extra));
        return config;
    }

    private static void train(Path config) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String progress = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(progress);
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8) + progress);
    }
}
