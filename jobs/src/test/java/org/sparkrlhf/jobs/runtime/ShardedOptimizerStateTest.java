package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.parallel.Sharding;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ModelShards;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.ShardTensors;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The optimizer state of tensor / pipeline shards through a checkpoint and back, on executors'
 * model stores (embedded, local[4]): a whole model's {@code optimizer.safetensors} with distinct
 * values in every element (exact in float) is loaded as a resumed run loads it, each rank of a
 * tp x pp placement cutting its slices of m and v (ModelShards.load); every rank's moments must
 * equal the slices {@link Sharding} cuts from the whole tensors. Then the moments are gathered onto
 * one device by the weights' reallocation plan and written by SaveModelCall (what a checkpoint of
 * a tp / pp run does): the written file must hold the original tensors, shapes, step and settings
 * exactly (copies only, so equality is exact), and the weights beside it the model's. Covers tp2 x
 * pp2 of an untied LLaMA and pp2 of a Qwen2 with tied embeddings (whose last stage holds a copy
 * of the embedding and of its moments).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ShardedOptimizerStateTest {
    private static final Path FIXTURES = Path.of("../gpu-exec/src/test/resources/fixtures").toAbsolutePath().normalize();
    private static final OptimizerConfig OPTIMIZER = new OptimizerConfig(2e-3, 0.9, 0.95, 1e-8, 0.01, 1.0, 0);
    private static final int STEPS = 6;

    @TempDir
    Path dir;

    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;

    @BeforeAll
    void start() {
        sc = new SparkContext(new SparkConf().setMaster("local[4]").setAppName("ShardedOptimizerStateTest")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1"));
        runner = new BarrierCallRunner(sc, false, BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), 30_000);
        inventory = ClusterDiscovery.discover(sc, runner, 30_000);
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
        ModelStore.get().clear();
    }

    @Test
    void tensorAndPipelineShardsLoadTheirSlicesAndGatherTheWholeStateBack() throws Exception {
        roundTrip("tiny-llama", 2, 2);
    }

    @Test
    void tiedEmbeddingsOverTwoStages() throws Exception {
        roundTrip("tiny-qwen2", 1, 2);
    }

    private void roundTrip(String fixture, int tp, int pp) throws Exception {
        String role = "opt-" + fixture;
        Path model = FIXTURES.resolve(fixture);
        ModelConfig config = ModelConfig.read(model.resolve("config.json"));
        // a checkpoint folder: the fixture's weights and a whole optimizer state after STEPS steps
        Path checkpoint = dir.resolve(fixture + "-checkpoint");
        Files.createDirectories(checkpoint);
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
            Files.copy(model.resolve(f), checkpoint.resolve(f));
        }
        Map<String, float[]> first = new LinkedHashMap<>();
        Map<String, float[]> second = new LinkedHashMap<>();
        List<OptimizerState.Moments> moments = new ArrayList<>();
        int k = 0;
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) {
            int n = 1;
            for (int d : s.shape()) {
                n *= d;
            }
            float[] m = new float[n];
            float[] v = new float[m.length];
            for (int i = 0; i < m.length; i++) {
                m[i] = k * 100_000f + i;
                v[i] = -(k * 100_000f + i);
            }
            first.put(s.name(), m);
            second.put(s.name(), v);
            moments.add(new OptimizerState.Moments(s.name(), s.shape(), () -> m, () -> v));
            k++;
        }
        AdamW.Hyper hyper = SftTrainCall.hyper(OPTIMIZER);
        OptimizerState.write(moments, STEPS, hyper, checkpoint.resolve(OptimizerState.FILE));
        ModelSource source = new ModelSource(checkpoint.toString(), STEPS);

        // 1. a resumed run's ranks load their shards with their slices of the moments
        List<DeviceSlot> devices = new ArrayList<>(inventory.devices().subList(0, tp * pp));
        Placement home = new Placement(role + "_train", role, devices, 1, tp, pp, 1);
        String homeKey = home.key();
        List<RankResult<HashMap<String, float[][]>>> loaded = runner.run("load shards", home,
                new ArrayList<>(Collections.nCopies(home.size(), 0)), (context, ignored) -> {
                    ResidentModel copy = ModelShards.load(context.backend(), source, context.placement(), context.rank(), STEPS, OPTIMIZER);
                    ModelStore.get().put(new ModelStore.Key(role, STEPS, homeKey, context.rank()), copy);
                    if (copy.optimizer().stepCount() != STEPS) {
                        throw new IllegalStateException("step count " + copy.optimizer().stepCount());
                    }
                    HashMap<String, float[][]> out = new HashMap<>();
                    for (AdamW.Param p : copy.optimizer().params()) {
                        out.put(p.name(), new float[][]{copy.tensor(p.name(), ShardTensors.View.EXP_AVG),
                                copy.tensor(p.name(), ShardTensors.View.EXP_AVG_SQ)});
                    }
                    return out;
                });
        for (RankResult<HashMap<String, float[][]>> r : loaded) {
            ShardSpec shard = ShardSpec.ofLocalRank(r.rank(), 1, tp, pp);
            Map<String, float[]> wantFirst = Sharding.shard(config, first, shard);
            Map<String, float[]> wantSecond = Sharding.shard(config, second, shard);
            assertEquals(wantFirst.keySet(), r.value().keySet(), shard.label());
            for (String name : wantFirst.keySet()) {
                assertArrayEquals(wantFirst.get(name), r.value().get(name)[0], shard.label() + " exp_avg." + name);
                assertArrayEquals(wantSecond.get(name), r.value().get(name)[1], shard.label() + " exp_avg_sq." + name);
            }
        }

        // 2. a checkpoint of it: a whole copy with the moments gathered beside it, written by rank 0
        ModelSpec spec = ModelSpec.fromHfConfig(model.resolve("config.json"));
        ModelResidency residency = new ModelResidency(runner, RunScenario.cluster(inventory, "h100"));
        residency.holds(role, STEPS, home);
        Placement whole = residency.wholeCopy(role, STEPS, home, spec, source);
        assertEquals(1, whole.size());
        Path saved = dir.resolve(fixture + "-saved");
        SaveModelCall.save(runner, whole.devices(), role, STEPS, whole.key(), model, saved.toString(), true);

        SafeTensorsFile want = SafeTensorsFile.open(checkpoint.resolve(OptimizerState.FILE));
        SafeTensorsFile got = SafeTensorsFile.open(saved.resolve(OptimizerState.FILE));
        assertEquals(want.metadata(), got.metadata());
        assertEquals(Integer.toString(STEPS), got.metadata().get("step"));
        assertEquals(List.copyOf(want.entries().keySet()), List.copyOf(got.entries().keySet()));
        for (String name : want.entries().keySet()) {
            assertArrayEquals(want.entries().get(name).shape(), got.entries().get(name).shape(), name);
            assertArrayEquals(want.readFloats(name), got.readFloats(name), name);
        }
        CheckpointWeights a = CheckpointWeights.open(model);
        CheckpointWeights b = CheckpointWeights.open(saved);
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) {
            assertArrayEquals(a.floats(s.name(), s.shape()), b.floats(s.name(), s.shape()), s.name());
        }
        // the save consumed the gathered moments: the stores hold the shards and the whole copy only
        List<ModelStore.Key> left = ModelStore.get().keys().stream().filter(key -> key.role().equals(role)).toList();
        assertEquals(home.size() + 1, left.size(), left.toString());
        assertTrue(left.stream().noneMatch(key -> key.layout().contains("#")), left.toString());
    }
}
