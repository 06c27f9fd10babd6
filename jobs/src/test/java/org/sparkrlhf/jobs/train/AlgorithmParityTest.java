package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Pins what SFT, GRPO and PPO compute (every rollout's tokens and the losses, rewards and held-out
 * rewards of every iteration) with fixed seeds, so that a change to the runtime that walks the
 * algorithms' graphs is shown to change none of it. The expected files are per CPU kernel set
 * ({@code src/test/resources/parity/<kernels>/}), written by this test ({@code -Dparity.write=true}):
 * {@code reference/} from the hand-written per-algorithm loops the graph runtime replaced, on the
 * pure-Java kernels (where the KL metric was called {@code kl/ref}; it is named by its estimator
 * now), which the graph runtime reproduces ({@code -Dsparkrlhf.cpu.kernels=reference}), except PPO's,
 * rewritten when mini-batches came to be cut from the whole batch rather than from each rank's rows
 * (its 2 mini-batches on dp 2 hold other rows now); {@code fast/} from the graph runtime on the
 * OpenBLAS kernels, whose sums differ in the last bits and so sample other tokens (GRPO and PPO
 * rewritten at the same change; all three again when the fast kernels' max, sum and dot went to the
 * Vector API, with OpenBLAS's AVX2 kernels named: the build sets OPENBLAS_CORETYPE=Haswell for the
 * tests, since OpenBLAS otherwise picks its kernels by CPU and their sums differ between machines;
 * GRPO's again when the tests got a profile cache of their own, empty: the runs plan on the roofline,
 * where a table the user's cache held for a model of the same name and config had changed GRPO's plan;
 * GRPO's and PPO's again when exp went to fused multiply-adds and the fast kernels' row and elementwise
 * loops to fused Vector API loops, whose sums differ in the last bits).
 * Floats are compared to 1e-6 relative.
 */
class AlgorithmParityTest {
    /** The metrics pinned: what the algorithm computes, not how long it took. */
    private static final Set<String> PINNED = Set.of("loss/actor", "loss/critic", "reward/mean", "eval/reward_mean",
            "kl/k3", "grad_norm/actor", "grad_norm/critic", "response_length/mean");

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void sftGrpoAndPpoComputeWhatTheyDidBeforeTheGraphRuntime() throws Exception {
        StringBuilder prompts = new StringBuilder();
        StringBuilder sft = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                prompts.append("{\"id\": \"q%d%d\", \"prompt\": \"%d+%d=\", \"reference\": \"%d\"}\n".formatted(a, b, a, b, a + b));
                sft.append("{\"id\": \"q%d%d\", \"prompt\": \"%d+%d=\", \"answer\": \"%d\"}\n".formatted(a, b, a, b, a + b));
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), prompts);
        Files.writeString(dir.resolve("sft.jsonl"), sft);
        String spark = """
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """;
        Path tiny = SftTrainingTest.TINY_LLAMA;
        check("sft", """
                name: parity-sft
                algorithm: sft
                seed: 3
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                data: {path: %s, batch_size: 4, max_prompt_tokens: 16}
                optimizer: {lr: 3.0e-3, weight_decay: 0.0}
                plan: {mode: baseline}
                """.formatted(dir.resolve("sft"), tiny, dir.resolve("sft.jsonl")) + spark);
        check("grpo", """
                name: parity-grpo
                algorithm: grpo
                seed: 5
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: 2, eval_size: 2, eval_every: 2, eval_samples: 3, max_prompt_tokens: 16}
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                grpo: {group_size: 4, kl_coef: 0.04, clip_ratio: 0.2, mini_batches: 2}
                plan: {mode: baseline}
                """.formatted(dir.resolve("grpo"), tiny, tiny, dir.resolve("prompts.jsonl")) + spark);
        check("ppo", """
                name: parity-ppo
                algorithm: ppo
                seed: 5
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                  reward: {path: %s}
                reward: {clip: 0.05}
                data: {path: %s, batch_size: 4, eval_size: 2, eval_every: 2, max_prompt_tokens: 16}
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                ppo: {epochs: 1, mini_batches: 2, gamma: 0.9, lambda: 0.8, whiten_advantages: false,
                      kl: {type: adaptive, coef: 0.2, target: 0.5, horizon: 100, estimator: k3}}
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [0, 1], dp: 2}
                    critic_inf: {devices: [0, 1], dp: 2}
                    actor_train: {devices: [0, 1], dp: 2}
                    critic_train: {devices: [0, 1], dp: 2}
                """.formatted(dir.resolve("ppo"), tiny, tiny, PpoTrainingTest.TINY_REWARD, PpoTrainingTest.TINY_REWARD,
                dir.resolve("prompts.jsonl")) + spark);
    }

    private void check(String algorithm, String yaml) throws Exception {
        Path config = dir.resolve(algorithm + ".yaml");
        Files.writeString(config, yaml);
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{config.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        System.out.print(stdout.toString(StandardCharsets.UTF_8));
        assertEquals(0, code, stderr.toString(StandardCharsets.UTF_8));
        List<String> actual = record(dir.resolve(algorithm));
        String kernels = CpuKernels.defaultKernels().name().toLowerCase(java.util.Locale.ROOT);
        Path expectedFile = Path.of("src/test/resources/parity/" + kernels + "/" + algorithm + ".txt");
        if (Boolean.getBoolean("parity.write")) {
            Files.createDirectories(expectedFile.getParent());
            Files.write(expectedFile, actual);
            return;
        }
        List<String> expected = Files.readAllLines(expectedFile);
        assertEquals(expected.size(), actual.size(), algorithm + ": lines\n" + String.join("\n", actual));
        for (int i = 0; i < expected.size(); i++) {
            String[] e = expected.get(i).split(" ");
            String[] a = actual.get(i).split(" ");
            assertEquals(e.length, a.length, algorithm + ": " + expected.get(i) + " vs " + actual.get(i));
            for (int j = 0; j < e.length; j++) {
                if (e[j].equals(a[j])) {
                    continue;
                }
                double x = Double.parseDouble(e[j]);
                double y = Double.parseDouble(a[j]);
                assertTrue(Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(x)),
                        algorithm + ": " + expected.get(i) + " vs " + actual.get(i));
            }
        }
    }

    /** The run's pinned metrics and rollouts, one sorted line each. */
    private static List<String> record(Path out) {
        SparkSession spark = TestSpark.deltaSession("AlgorithmParityTest", 1);
        try {
            List<String> lines = new ArrayList<>();
            for (Row r : spark.read().format("delta").load(RunOutput.metricsPath(out)).collectAsList()) {
                String name = r.getAs("name");
                if (PINNED.contains(name)) {
                    lines.add("metric " + r.getAs("iteration") + " " + name + " " + r.<Double>getAs("value"));
                }
            }
            Path rollouts = Path.of(RunOutput.rolloutsPath(out));
            if (Files.exists(rollouts)) {
                for (Row r : spark.read().format("delta").load(rollouts.toString()).collectAsList()) {
                    StringBuilder line = new StringBuilder("rollout " + r.getAs("iteration") + " " + r.getAs("prompt_id"));
                    for (Object t : r.getList(r.fieldIndex("response_tokens"))) {
                        line.append(' ').append(t);
                    }
                    line.append(" reward ").append(r.<Double>getAs("reward"));
                    for (Object lp : r.getList(r.fieldIndex("logprobs"))) {
                        line.append(' ').append(lp);
                    }
                    lines.add(line.toString());
                }
            }
            lines.sort(null);
            return lines;
        } finally {
            spark.stop();
        }
    }
}
