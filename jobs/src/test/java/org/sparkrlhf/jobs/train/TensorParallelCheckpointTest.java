package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checkpoints of a GRPO actor trained tensor parallel (embedded, local[2]: actor_gen and ref_inf
 * data parallel over both ranks, actor_train tp2 over the same two), whose AdamW moments live in the
 * train call's two shards:
 * <ol>
 *   <li>a run killed right after its first checkpoint and resumed with {@code --resume} ends with
 *       the final weights of the uninterrupted run, bit for bit: the checkpoint holds the shards'
 *       weights, moments and step exactly (gathered by copies, cut again by copies), and the
 *       resumed run computes the same sums in the same order as the uninterrupted one;</li>
 *   <li>the checkpoint's {@code optimizer.safetensors} has the names, shapes, step and settings of
 *       the one an unsharded actor_train (one whole replica, so the same mini-batches) writes after
 *       the same steps, and its moments equal those within float rounding: tensor parallelism adds
 *       the o_proj / down_proj partial products and the vocabulary-parallel pieces after an
 *       all-reduce, where the whole model adds along one dot product, so the gradients (hence
 *       m = sum of (1 - b1) b1^k g and v = sum of (1 - b2) b2^k g^2) differ in the last bits of
 *       the summands, which is more than the last bits of a gradient element where its summands
 *       cancel. The bound is relative to each tensor's largest magnitude, 1e-3 (the test prints the
 *       measured worst; 2.1e-4 when it was written): far below what a wrong slice, a missing step or a moment of the wrong
 *       parameter gives (differences of the order of the values themselves).</li>
 *   <li>PPO with actor_train and critic_train tp2 (the critic a fresh value head on the actor's
 *       decoder, cut into shards from the whole model it is built as) resumes the same way: the
 *       checkpoint's optimizer files are the uninterrupted run's, and the final actor and critic
 *       are its, bit for bit.</li>
 * </ol>
 * The reference model is the actor scaled by 0.9, with a KL coefficient of 1, so that the first
 * iteration's gradients are not zero (the tiny random actor earns no reward on its own).
 */
class TensorParallelCheckpointTest {
    static SparkSession spark;

    @TempDir
    static Path dir;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("tp checkpoint test", 2);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        ModelStore.get().clear();
    }

    /** What the simulated kill throws. */
    static final class Killed extends RuntimeException {
        Killed(String message) {
            super(message);
        }
    }

    /** A progress stream that, with {@code killAfterCheckpoint}, throws right after the first "checkpoint" line. */
    static PrintStream progress(ByteArrayOutputStream sink, boolean killAfterCheckpoint) {
        return new PrintStream(sink, true, StandardCharsets.UTF_8) {
            @Override
            public PrintStream format(String format, Object... args) {
                super.format(format, args);
                if (killAfterCheckpoint && String.format(format, args).startsWith("checkpoint ")) {
                    throw new Killed("killed after the checkpoint");
                }
                return this;
            }
        };
    }

    /** Runs the config; the executors' stores are cleared after it (its executors end with the job). */
    static String train(RunConfig config, boolean resume, boolean killAfterCheckpoint) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try {
            if (killAfterCheckpoint) {
                assertThrows(Exception.class, () -> TrainCommand.train(spark, config, progress(sink, true), resume));
            } else {
                TrainCommand.train(spark, config, progress(sink, false), resume);
            }
        } finally {
            ModelStore.get().clear();
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void tensorParallelActorCheckpointsResumeBitForBitAndMatchTheUnshardedOptimizerFile() throws Exception {
        Path ref = PerturbedReference.under(dir);
        String tp2 = "{devices: [0, 1], tp: 2}";
        Path straight = dir.resolve("tp-straight");
        Path killed = dir.resolve("tp-killed");
        Path dataParallel = dir.resolve("dp");
        ModelStore.get().clear();
        String first = train(config("tp-ckpt", straight, ref, tp2), false, false);
        assertTrue(first.contains("iter 2/2") && first.contains("checkpoint "), first);

        RunConfig config = config("tp-ckpt", killed, ref, tp2);
        train(config, false, true);
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(killed.toString(), new Configuration()).newestComplete()
                .orElseThrow();
        assertEquals(1, cp.state().iteration());
        assertEquals(2L, cp.state().version("actor"), "two mini-batches: two optimizer steps");
        Path tpOptimizer = cp.localDir().resolve("actor").resolve(OptimizerState.FILE);
        // the killed run's checkpoint is the uninterrupted run's, file for file
        Path straightCp = straight.resolve("checkpoints").resolve("iter-00000001").resolve("actor");
        assertFilesEqual(straightCp.resolve(OptimizerState.FILE), tpOptimizer);
        assertWeightsEqual(straightCp, cp.localDir().resolve("actor"), 0);

        String resumed = train(config, true, false);
        assertTrue(resumed.contains("iteration 1 done") && !resumed.contains("iter 1/2") && resumed.contains("iter 2/2"),
                resumed);
        assertWeightsEqual(straight.resolve("final"), killed.resolve("final"), 0);
        assertNotEqualWeights(cp.localDir().resolve("actor"), killed.resolve("final"));

        // the same steps on one whole replica (the tp2 call is one replica too: the same mini-batches)
        // write the same optimizer file, up to rounding
        train(config("dp-ckpt", dataParallel, ref, "{devices: [0]}"), false, true);
        Path dpOptimizer = dataParallel.resolve("checkpoints").resolve("iter-00000001").resolve("actor")
                .resolve(OptimizerState.FILE);
        SafeTensorsFile want = SafeTensorsFile.open(dpOptimizer);
        SafeTensorsFile got = SafeTensorsFile.open(tpOptimizer);
        assertEquals(want.metadata(), got.metadata());
        assertEquals("2", got.metadata().get("step"));
        assertEquals(List.copyOf(want.entries().keySet()), List.copyOf(got.entries().keySet()));
        double worst = 0;
        for (String name : want.entries().keySet()) {
            assertArrayEquals(want.entries().get(name).shape(), got.entries().get(name).shape(), name);
            float[] a = want.readFloats(name);
            float[] b = got.readFloats(name);
            double scale = 0;
            double diff = 0;
            for (int i = 0; i < a.length; i++) {
                scale = Math.max(scale, Math.abs(a[i]));
                diff = Math.max(diff, Math.abs(a[i] - b[i]));
            }
            assertTrue(scale > 0, name + " is zero: the step trained nothing");
            assertTrue(diff <= 1e-3 * scale, name + ": largest difference " + diff + " for values up to " + scale);
            worst = Math.max(worst, diff / scale);
        }
        System.out.printf("tp2 and unsharded moments: largest difference %.3g of the tensor's largest value%n", worst);
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void ppoWithTensorParallelActorAndCriticTrainingResumesBitForBit() throws Exception {
        Path ref = PerturbedReference.under(dir);
        Path straight = dir.resolve("ppo-straight");
        Path killed = dir.resolve("ppo-killed");
        ModelStore.get().clear();
        train(ppoConfig(straight, ref), false, false);

        RunConfig config = ppoConfig(killed, ref);
        train(config, false, true);
        RunCheckpoints.Checkpoint cp = new RunCheckpoints(killed.toString(), new Configuration()).newestComplete()
                .orElseThrow();
        assertEquals(1, cp.state().iteration());
        for (String role : List.of("actor", "critic")) {
            Path optimizer = cp.localDir().resolve(role).resolve(OptimizerState.FILE);
            assertEquals("1", SafeTensorsFile.open(optimizer).metadata().get("step"), role);
            assertFilesEqual(straight.resolve("checkpoints").resolve("iter-00000001").resolve(role)
                    .resolve(OptimizerState.FILE), optimizer);
        }
        String resumed = train(config, true, false);
        assertTrue(resumed.contains("iteration 1 done") && !resumed.contains("iter 1/2") && resumed.contains("iter 2/2"),
                resumed);
        assertWeightsEqual(straight.resolve("final"), killed.resolve("final"), 0);
        assertWeightsEqual(straight.resolve("final-critic"), killed.resolve("final-critic"), 0);
        assertNotEqualWeights(cp.localDir().resolve("critic"), killed.resolve("final-critic"));
    }

    /** PPO with a value head on the actor's decoder as the critic; actor_train and critic_train tp2. */
    private RunConfig ppoConfig(Path out, Path ref) throws Exception {
        Path prompts = prompts();
        Path yaml = dir.resolve(out.getFileName() + ".yaml");
        Files.writeString(yaml, """
                name: ppo-tp-ckpt
                algorithm: ppo
                seed: 13
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: 2
                  eval_size: 0
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                ppo: {epochs: 1, mini_batches: 1, critic_lr: 1.0e-3}
                checkpoint: {every: 1, keep: 1}
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [0, 1], dp: 2}
                    critic_inf: {devices: [0, 1], dp: 2}
                    actor_train: {devices: [0, 1], tp: 2}
                    critic_train: {devices: [0, 1], tp: 2}
                spark:
                  master: local[2]
                """.formatted(out, SftTrainingTest.TINY_LLAMA, ref, SftTrainingTest.TINY_LLAMA, prompts));
        return new RunConfigReader(new Configuration()).read(yaml.toString());
    }

    private static Path prompts() throws Exception {
        Path prompts = dir.resolve("prompts.jsonl");
        if (!Files.exists(prompts)) {
            StringBuilder jsonl = new StringBuilder();
            for (int a = 1; a <= 3; a++) {
                for (int b = 1; b <= 3; b++) {
                    jsonl.append("{\"id\": \"q").append(a).append(b).append("\", \"prompt\": \"").append(a).append("+")
                            .append(b).append("=\", \"reference\": \"").append(a + b).append("\"}\n");
                }
            }
            Files.writeString(prompts, jsonl);
        }
        return prompts;
    }

    private RunConfig config(String name, Path out, Path ref, String actorTrain) throws Exception {
        Path prompts = prompts();
        Path yaml = dir.resolve(out.getFileName() + ".yaml");
        Files.writeString(yaml, """
                name: %s
                algorithm: grpo
                seed: 7
                iterations: 2
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data:
                  path: %s
                  batch_size: 2
                  eval_size: 0
                  max_prompt_tokens: 16
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 3.0e-3, weight_decay: 0.01}
                grpo: {group_size: 2, kl_coef: 1.0, clip_ratio: 0.2, mini_batches: 2}
                checkpoint: {every: 1, keep: 2}
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [0, 1], dp: 2}
                    actor_train: %s
                spark:
                  master: local[2]
                """.formatted(name, out, SftTrainingTest.TINY_LLAMA, ref, prompts, actorTrain));
        return new RunConfigReader(new Configuration()).read(yaml.toString());
    }

    private static void assertFilesEqual(Path a, Path b) throws Exception {
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), a + " and " + b);
    }

    /** Same tensor names and shapes, values within {@code tolerance} (0: bit for bit). */
    private static void assertWeightsEqual(Path a, Path b, float tolerance) {
        CheckpointWeights wa = CheckpointWeights.open(a);
        CheckpointWeights wb = CheckpointWeights.open(b);
        assertEquals(wa.names(), wb.names());
        for (String name : wa.names()) {
            int[] shape = wa.entry(name).shape();
            assertArrayEquals(shape, wb.entry(name).shape(), name);
            if (tolerance == 0) {
                assertArrayEquals(wa.floats(name, shape), wb.floats(name, shape), name);
            } else {
                assertArrayEquals(wa.floats(name, shape), wb.floats(name, shape), tolerance, name);
            }
        }
    }

    private static void assertNotEqualWeights(Path a, Path b) {
        CheckpointWeights wa = CheckpointWeights.open(a);
        CheckpointWeights wb = CheckpointWeights.open(b);
        boolean differs = false;
        for (String name : wa.names()) {
            int[] shape = wa.entry(name).shape();
            differs |= !java.util.Arrays.equals(wa.floats(name, shape), wb.floats(name, shape));
        }
        assertTrue(differs, "the resumed iteration changed no weight of " + a);
    }
}
