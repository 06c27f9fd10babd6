package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.ForwardBinding;
import org.sparkrlhf.jobs.graph.GenerateBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Scores;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.graph.TrainBinding;
import org.sparkrlhf.jobs.graph.TrainLoss;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.DriverHook;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An algorithm that exists only in this test runs on the unchanged runtime: best-of-n rejection
 * sampling with SFT on the winners (RAFT, Dong et al. 2023). Its graph, its hook, its loss and its
 * spec are written here:
 * <pre>
 *   actor_gen   (GENERATE)  k answers per prompt
 *   reward_inf  (INFERENCE) the reward model's score of each answer
 *   keep_best   (hook)      per prompt, the answer with the highest score -> best_input_ids
 *   actor_train (TRAIN)     the SFT loss on best_input_ids only, one step
 * </pre>
 * {@link RunDriver#run} plans and runs it embedded (local[2], the planner's data-parallel baseline) for
 * two iterations. Checked against references computed here: the scores equal the fixture reward
 * model's, the kept answer of each prompt is its best-scored one, and the loss the train call reports
 * is the SFT loss of the policy that sampled (the fixture, then the checkpoint after iteration 1) on
 * the kept answers, recomputed with {@link LlamaModel}.
 */
class TestDefinedAlgorithmTest {
    private static final int ITERATIONS = 2;
    private static final int BATCH = 2;
    private static final int SAMPLES = 4;
    private static final int MAX_NEW = 4;

    @TempDir
    Path dir;

    /** The graph, as a planner graph: keys link the calls and the hook. */
    static DataflowGraph bestOfN() {
        return new DataflowGraph("best-of-n",
                List.of(ModelCall.generate("actor_gen", "actor", List.of("packed_prompts"),
                                List.of("packed_input_ids", "prompt_mask")),
                        ModelCall.inference("reward_inf", "reward", List.of("packed_input_ids", "prompt_mask"),
                                List.of("rewards")),
                        ModelCall.train("actor_train", "actor", List.of("best_input_ids"), 1)),
                List.of(new DriverHook("keep_best", List.of("rewards", "packed_input_ids"), List.of("best_input_ids"))));
    }

    /** keep_best: per prompt (k consecutive rows), the row with the highest score (the first of equals). */
    static Sequences keepBest(Sequences rows, float[] scores, int k) {
        int prompts = rows.size() / k;
        int[][] p = new int[prompts][];
        int[][] r = new int[prompts][];
        boolean[] stopped = new boolean[prompts];
        for (int q = 0; q < prompts; q++) {
            int best = q * k;
            for (int s = q * k + 1; s < (q + 1) * k; s++) {
                if (scores[s] > scores[best]) {
                    best = s;
                }
            }
            p[q] = rows.prompts()[best];
            r[q] = rows.responses()[best];
            stopped[q] = rows.stopped()[best];
        }
        return new Sequences(p, r, stopped);
    }

    /**
     * The SFT loss on the kept answers, from the existing train executor function: the binding splits
     * the iteration's k * B sampled rows into whole prompts per data-parallel rank, so the rank's
     * sampled rows i k .. i k + k - 1 are kept row i k / k's samples.
     */
    static TrainLoss<SftTrainCall.Slice, SftTrainCall.Result> sftOnKept() {
        return new TrainLoss<>("sft-on-kept", (run, call, keys, dp, r, rows) -> {
            Sequences kept = keys.get(call.inputKeys().get(0), Sequences.class);
            int k = run.group();
            int[][] ids = new int[rows.size() / k][];
            int[] promptTokens = new int[ids.length];
            for (int i = 0; i < ids.length; i++) {
                int[] prompt = kept.prompts()[rows.index()[i * k] / k];
                int[] answer = kept.responses()[rows.index()[i * k] / k];
                ids[i] = Arrays.copyOf(prompt, prompt.length + answer.length);
                System.arraycopy(answer, 0, ids[i], prompt.length, answer.length);
                promptTokens[i] = prompt.length;
            }
            String role = call.role();
            return new SftTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp, ids,
                    promptTokens, run.special().pad(), (int) kept.responseTokens(), run.models().model(role).optimizer());
        }, new SftTrainCall());
    }

    /** What an iteration produced, kept for the checks. */
    record Iteration(Sequences sampled, float[] scores, Sequences kept, SftTrainCall.Result step) {
    }

    /** The algorithm's spec: its bindings, its hook, its data (prompts) and its figures. */
    static final class BestOfNSpec implements AlgorithmSpec {
        final Map<Integer, Iteration> iterations = new TreeMap<>();

        @Override
        public int group(RunConfig config) {
            return config.grpo().groupSize();
        }

        @Override
        public Map<String, CallBinding> bindings(RunConfig config) {
            return Map.of("actor_gen", new GenerateBinding(false),
                    "reward_inf", new ForwardBinding(ForwardBinding.Output.SCORES),
                    "actor_train", new TrainBinding<>(sftOnKept()));
        }

        @Override
        public Map<String, Hook> hooks(RunConfig config) {
            return Map.of("keep_best", (run, hook, keys) -> keys.put(hook.outputKeys().get(0),
                    keepBest(keys.get(hook.inputKeys().get(1), Sequences.class),
                            keys.get(hook.inputKeys().get(0), Scores.class).values(), run.group())));
        }

        @Override
        public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special,
                                 String output) {
            return PromptData.read(spark, config, tokenizerDir, special, output);
        }

        @Override
        public boolean writesRollouts() {
            return false;
        }

        @Override
        public Report report(RunContext run, Keys keys, TrainingData data) {
            @SuppressWarnings("unchecked")
            SftTrainCall.Result step = ((List<SftTrainCall.Result>) keys.result("actor_train", List.class)).get(0);
            float[] scores = keys.get("rewards", Scores.class).values();
            iterations.put(keys.iteration(), new Iteration(keys.get("packed_input_ids", Sequences.class), scores,
                    keys.get("best_input_ids", Sequences.class), step));
            Instant now = Instant.now();
            return new Report(List.of(new MetricRow("loss/actor", step.loss(), now),
                    new MetricRow("reward/best_mean", mean(keys.get("best_input_ids", Sequences.class), scores, run.group()),
                            now)),
                    String.format("loss %.4f", step.loss()), List.of());
        }

        private static double mean(Sequences kept, float[] scores, int k) {
            double sum = 0;
            for (int q = 0; q < kept.size(); q++) {
                float best = Float.NEGATIVE_INFINITY;
                for (int s = q * k; s < (q + 1) * k; s++) {
                    best = Math.max(best, scores[s]);
                }
                sum += best;
            }
            return sum / kept.size();
        }
    }

    @Test
    @Timeout(value = 480, unit = TimeUnit.SECONDS)
    void bestOfNDefinedHereRunsOnTheRuntime() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q%d%d\", \"prompt\": \"%d+%d=\", \"reference\": \"%d\"}\n".formatted(a, b, a, b, a + b));
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        Path out = dir.resolve("run");
        Path yaml = dir.resolve("best-of-n.yaml");
        // the run settings: a sampling algorithm's config (grpo's group_size is the k of best-of-k)
        Files.writeString(yaml, """
                name: best-of-n
                algorithm: grpo
                seed: 13
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  reward: {path: %s}
                data: {path: %s, batch_size: %d, eval_size: 0, max_prompt_tokens: 16}
                generation: {max_new_tokens: %d, temperature: 1.0}
                optimizer: {lr: 1.0e-2, weight_decay: 0.0}
                grpo: {group_size: %d}
                checkpoint: {every: 1}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(ITERATIONS, out, SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                PpoTrainingTest.TINY_REWARD, dir.resolve("prompts.jsonl"), BATCH, MAX_NEW, SAMPLES));
        RunConfig config = EmbeddedRun.config(yaml);
        BestOfNSpec spec = new BestOfNSpec();
        RunDriver.Summary summary;
        try (EmbeddedRun run = EmbeddedRun.start(config)) {
            summary = RunDriver.run(run.spark(), config, bestOfN(), spec, run.runner(), run.inventory(),
                    new PrintStream(System.out, true, StandardCharsets.UTF_8), false);
        }
        assertEquals(List.of(1, 2), List.copyOf(spec.iterations.keySet()));
        assertTrue(summary.finals().containsKey("actor"), summary.finals().toString());
        assertEquals(List.of(spec.iterations.get(1).step().loss(), spec.iterations.get(2).step().loss()),
                summary.series("loss/actor"));

        SpecialTokens special = SpecialTokens.read(SftTrainingTest.TINY_LLAMA);
        try (CpuBackend backend = new CpuBackend();
             LlamaModel reward = LlamaModel.load(backend, PpoTrainingTest.TINY_REWARD)) {
            for (Map.Entry<Integer, Iteration> e : spec.iterations.entrySet()) {
                int i = e.getKey();
                Iteration it = e.getValue();
                assertEquals(BATCH * SAMPLES, it.sampled().size());
                assertEquals(BATCH, it.kept().size());
                // the scores are the reward model's
                float[] expectedScores = new float[it.sampled().size()];
                for (int s = 0; s < expectedScores.length; s++) {
                    int[] row = concat(it.sampled().prompts()[s], it.sampled().responses()[s]);
                    expectedScores[s] = reward.scores(Batch.rightPadded(new int[][]{row}, special.pad()))[0];
                }
                assertArrayEquals(expectedScores, it.scores(), 1e-4f, "iteration " + i + " scores");
                // each prompt kept its best-scored answer (by the reference scores)
                for (int q = 0; q < BATCH; q++) {
                    int best = q * SAMPLES;
                    for (int s = best + 1; s < (q + 1) * SAMPLES; s++) {
                        if (expectedScores[s] > expectedScores[best]) {
                            best = s;
                        }
                    }
                    assertArrayEquals(it.sampled().prompts()[best], it.kept().prompts()[q], "iteration " + i + " prompt " + q);
                    assertArrayEquals(it.sampled().responses()[best], it.kept().responses()[q],
                            "iteration " + i + " prompt " + q + ": scores " + Arrays.toString(expectedScores));
                }
                // the train call's loss: the SFT loss of the sampling policy on the kept answers only
                Path policy = i == 1 ? SftTrainingTest.TINY_LLAMA
                        : out.resolve("checkpoints").resolve(String.format("iter-%08d", i - 1)).resolve("actor");
                double loss;
                try (LlamaModel actor = LlamaModel.load(backend, policy)) {
                    loss = sftLoss(actor, it.kept());
                }
                assertEquals(loss, it.step().loss(), 1e-5 * Math.max(1, loss), "iteration " + i + " loss");
                assertEquals(i, it.step().version(), "one optimizer step per iteration");
                System.out.printf("iteration %d: scores %s, kept %s, loss %.6f (recomputed %.6f)%n", i,
                        Arrays.toString(it.scores()), Arrays.deepToString(it.kept().responses()), it.step().loss(), loss);
            }
        }
    }

    /** -sum of log p(answer token | prompt and the answer before it) over the kept rows, over their answer tokens. */
    private static double sftLoss(LlamaModel model, Sequences kept) {
        double sum = 0;
        for (int q = 0; q < kept.size(); q++) {
            int[] prompt = kept.prompts()[q];
            int[] row = concat(prompt, kept.responses()[q]);
            TokenStats stats = model.forward(Batch.rightPadded(new int[][]{row}, 0), false);
            for (int t = prompt.length; t < row.length; t++) {
                // logprob(b, t - 1) is log p(row[t] | row[0..t-1])
                sum -= stats.logprob(0, t - 1);
            }
            model.releaseActivations();
        }
        return sum / kept.responseTokens();
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
