package org.sparkrlhf.jobs.calls;

import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.RankResult;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * SFT's train call with dp = 2 as a barrier stage (local[2], TCP gradient all-reduce, replicas
 * resident in the model store between steps) gives the losses of the same steps run in one
 * process on the whole batch.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class DataParallelSftTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();
    static final RunConfig.OptimizerConfig OPTIMIZER = new RunConfig.OptimizerConfig(3e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, 0);
    static final AdamW.Hyper HYPER = SftTrainCall.hyper(OPTIMIZER);
    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;

    @BeforeAll
    void start() {
        sc = TestSpark.local("DataParallelSftTest", 2);
        runner = new BarrierCallRunner(sc, false, false, 60_000);
        inventory = ClusterDiscovery.discover(sc, runner, 10_000);
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    static int[][] rows(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[][] rows = new int[4][];
        for (int b = 0; b < rows.length; b++) {
            rows[b] = new int[6 + rng.nextInt(6)];
            for (int t = 0; t < rows[b].length; t++) {
                rows[b][t] = 3 + rng.nextInt(500);
            }
        }
        return rows;
    }

    @Test
    void dataParallelStepsMatchTheSingleProcessSteps() {
        int steps = 3;
        int[][] rows = rows(11);
        int targets = Arrays.stream(rows).mapToInt(r -> r.length - 1).sum();

        List<Double> reference = new ArrayList<>();
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, TINY_LLAMA);
             AdamW opt = AdamW.forModel(model, HYPER)) {
            Batch batch = Batch.rightPadded(rows, 0);
            for (int s = 0; s < steps; s++) {
                model.zeroGradients();
                SftLoss.Result loss = SftLoss.of(batch, model.forward(batch, false), targets);
                model.backward(loss.dLogprobs(), null);
                opt.step();
                reference.add((double) loss.loss());
            }
        }

        ModelSource source = new ModelSource(TINY_LLAMA.toString(), 0);
        List<Double> distributed = new ArrayList<>();
        for (int s = 0; s < steps; s++) {
            List<SftTrainCall.Slice> slices = List.of(
                    new SftTrainCall.Slice("dp-test-actor", source, s, 2, new int[][]{rows[0], rows[1]}, new int[]{1, 1}, 0, targets, OPTIMIZER),
                    new SftTrainCall.Slice("dp-test-actor", source, s, 2, new int[][]{rows[2], rows[3]}, new int[]{1, 1}, 0, targets, OPTIMIZER));
            List<RankResult<SftTrainCall.Result>> results = runner.run("actor_train", "actor_train step " + s,
                    inventory.devices(), slices, new SftTrainCall());
            assertEquals(results.get(0).value().loss(), results.get(1).value().loss(), "ranks agree on the loss");
            assertEquals(s + 1, results.get(0).value().version());
            distributed.add(results.get(0).value().loss());
        }
        for (int s = 0; s < steps; s++) {
            assertEquals(reference.get(s), distributed.get(s), 2e-5 * Math.abs(reference.get(s)), "loss of step " + s);
        }
        // the replicas stayed resident: both ranks hold version 3 and loaded the model only once each
        long held = ModelStore.get().keys().stream().filter(k -> k.role().equals("dp-test-actor") && k.version() == steps).count();
        assertEquals(2, held);
    }
}
