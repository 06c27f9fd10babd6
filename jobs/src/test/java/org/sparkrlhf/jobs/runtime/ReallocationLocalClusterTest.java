package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.CommSettings;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.ReallocationCall;
import org.sparkrlhf.jobs.executor.ShardSet;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.planner.realloc.ModelParameters;
import org.sparkrlhf.planner.realloc.Param;
import org.sparkrlhf.planner.realloc.ShardLayout;
import org.sparkrlhf.planner.realloc.Slice;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Reallocation between executor JVMs ({@code local-cluster}: two executors of two CPU slots):
 * shards of a model are put in the executors' stores under one layout, moved by the planner's
 * reallocation plan to another layout (other devices, other dp / tp / pp), and every destination
 * shard must equal the slice of the full tensors that the planner's {@code ShardLayout} assigns to
 * its device, element for element (copies are exact, so equality is exact). The messages between
 * executors move in chunks of 3 floats ({@link CommSettings#CHUNK_BYTES}), so that the chunked
 * packing and unpacking of pieces runs on a model this small.
 */
@Tag("local-cluster")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class ReallocationLocalClusterTest {
    private static final String ROLE = "realloc-test";

    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;
    private ModelResidency residency;
    private long version;

    @BeforeAll
    void start() throws IOException {
        // messages in chunks of 3 floats: chunks start and end mid-piece and mid-row
        sc = new SparkContext(cpuLocalCluster("ReallocationLocalClusterTest").set(CommSettings.CHUNK_BYTES, "12"));
        runner = new BarrierCallRunner(sc, false, true, 60_000);
        inventory = ClusterDiscovery.discover(sc, runner, 60_000);
        residency = new ModelResidency(runner, RunScenario.cluster(inventory, "h100"));
    }

    /** Two executors of two CPU task slots each (the executors get this JVM's classpath). */
    static SparkConf cpuLocalCluster(String app) throws IOException {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null || System.getenv("SPARK_SCALA_VERSION") == null) {
            throw new IllegalStateException("SPARK_HOME and SPARK_SCALA_VERSION must be set (jobs/pom.xml sets them for surefire)");
        }
        Files.createDirectories(Path.of(sparkHome, "jars"));
        return new SparkConf().setMaster("local-cluster[2,2,1024]").setAppName(app)
                .set("spark.executor.extraClassPath", System.getProperty("java.class.path"))
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1");
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    @Test
    void discoveryGroupsSlotsByExecutor() {
        assertEquals(4, inventory.size());
        assertEquals(List.of("0", "0", "1", "1"), inventory.devices().stream().map(DeviceSlot::executorId).toList());
    }

    @Test
    void shardsMovedBetweenLayoutsEqualTheSlicesOfTheFullTensors() {
        // 4 heads over 2 key/value heads (grouped-query attention), 4 layers: tp 1..2, pp 1..4
        ModelSpec untied = new ModelSpec("realloc-untied", 4, 8, 12, 4, 2, 2, 10, false, false, false);
        ModelSpec tied = new ModelSpec("realloc-tied", 4, 8, 12, 4, 2, 2, 10, true, true, false);
        for (ModelSpec spec : List.of(untied, tied)) {
            Map<String, float[]> full = fullTensors(spec);
            // data parallel on one executor -> tensor parallel on the other
            check(spec, full, placement("dp2", 2, 1, 1, 0), placement("tp2", 1, 2, 1, 2));
            // tensor parallel -> tensor x pipeline parallel over both executors
            check(spec, full, placement("tp2", 1, 2, 1, 2), placement("tp2pp2", 1, 2, 2, 0));
            // tensor x pipeline -> data x tensor on the same devices
            check(spec, full, placement("tp2pp2", 1, 2, 2, 0), placement("dp2tp2", 2, 2, 1, 0));
            // pipeline 4 -> one whole copy on the last device (what a checkpoint is saved from)
            check(spec, full, placement("pp4", 1, 1, 4, 0), placement("whole", 1, 1, 1, 3));
            // one whole copy -> data parallel over all four (same device: a copy in memory)
            check(spec, full, placement("whole", 1, 1, 1, 3), placement("dp4", 4, 1, 1, 0));
        }
        assertTrue(residency.moves().stream().allMatch(m -> m.elementsBetweenDevices() > 0), residency.moves().toString());
    }

    private Placement placement(String name, int dp, int tp, int pp, int first) {
        List<DeviceSlot> devices = new ArrayList<>();
        for (int i = 0; i < dp * tp * pp; i++) {
            devices.add(inventory.device(first + i));
        }
        return new Placement(name, ROLE, devices, dp, tp, pp, 1);
    }

    private void check(ModelSpec spec, Map<String, float[]> full, Placement from, Placement to) {
        version++;
        long v = version;
        ShardLayout src = new ShardLayout(spec, from.mesh(), from.strategy());
        List<HashMap<String, float[]>> inputs = new ArrayList<>();
        for (int r = 0; r < from.size(); r++) {
            inputs.add(slices(spec, full, src, from.devices().get(r).index()));
        }
        String fromKey = from.key();
        runner.run("put shards", from, inputs, (context, shards) -> {
            ModelStore.get().put(new ModelStore.Key(ROLE, v, fromKey, context.rank()), new ShardSet(shards));
            return true;
        });
        residency.reallocate(ROLE, v, from, to, spec, null, ReallocationCall.Build.TENSORS, null);
        String toKey = to.key();
        List<RankResult<HashMap<String, float[]>>> got = runner.run("get shards", to, new ArrayList<>(
                java.util.Collections.nCopies(to.size(), 0)), (context, ignored) -> {
            ShardSet s = ModelStore.get().find(new ModelStore.Key(ROLE, v, toKey, context.rank()));
            if (s == null) {
                throw new IllegalStateException("no shard " + toKey + " rank " + context.rank());
            }
            return new HashMap<>(s.tensors());
        });
        ShardLayout dst = new ShardLayout(spec, to.mesh(), to.strategy());
        for (RankResult<HashMap<String, float[]>> r : got) {
            int device = to.devices().get(r.rank()).index();
            assertEquals(to.devices().get(r.rank()).executorId(), r.executorId());
            Map<String, float[]> expected = slices(spec, full, dst, device);
            assertEquals(expected.keySet(), r.value().keySet(), from.key() + " -> " + to.key() + " device " + device);
            for (Map.Entry<String, float[]> e : expected.entrySet()) {
                assertArrayEquals(e.getValue(), r.value().get(e.getKey()),
                        spec.name() + " " + from.key() + " -> " + to.key() + ": " + e.getKey() + " on device " + device);
            }
        }
    }

    /** Every parameter with distinct values (its index * 10^4 + element), exact in float. */
    private static Map<String, float[]> fullTensors(ModelSpec spec) {
        Map<String, float[]> full = new LinkedHashMap<>();
        int k = 0;
        for (Param p : ModelParameters.all(spec)) {
            float[] t = new float[Math.toIntExact(p.elements())];
            for (int i = 0; i < t.length; i++) {
                t[i] = k * 10_000f + i;
            }
            full.put(p.name(), t);
            k++;
        }
        return full;
    }

    /** The slices device {@code device} holds under {@code layout}, cut from the full tensors. */
    private static HashMap<String, float[]> slices(ModelSpec spec, Map<String, float[]> full, ShardLayout layout,
                                                   int device) {
        HashMap<String, float[]> out = new LinkedHashMap<>();
        for (Param p : ModelParameters.all(spec)) {
            Slice s = layout.slice(p, device);
            if (s == null) {
                continue;
            }
            float[] t = full.get(p.name());
            float[] part = new float[Math.toIntExact(s.elements())];
            for (long r = s.rowStart(); r < s.rowEnd(); r++) {
                System.arraycopy(t, Math.toIntExact(r * p.cols() + s.colStart()), part,
                        Math.toIntExact((r - s.rowStart()) * s.cols()), Math.toIntExact(s.cols()));
            }
            out.put(p.name(), part);
        }
        return out;
    }
}
