package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The runtime on real executor JVMs: two executors with two (fake) GPUs each. */
@Tag("local-cluster")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class LocalClusterRuntimeTest {
    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;
    private final List<String> jobDescriptions = Collections.synchronizedList(new ArrayList<>());
    private final List<String> jobGroups = Collections.synchronizedList(new ArrayList<>());

    @BeforeAll
    void start() {
        sc = TestSpark.localCluster("LocalClusterRuntimeTest");
        sc.addSparkListener(new SparkListener() {
            @Override
            public void onJobStart(SparkListenerJobStart start) {
                jobDescriptions.add(String.valueOf(start.properties().getProperty("spark.job.description")));
                jobGroups.add(String.valueOf(start.properties().getProperty("spark.jobGroup.id")));
            }
        });
        runner = new BarrierCallRunner(sc, true, BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), 60_000);
        inventory = ClusterDiscovery.discover(sc, runner, 60_000);
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    @Test
    void discoveryFindsEveryGpuOfEveryExecutorOnce() {
        assertEquals(4, inventory.size(), inventory.toString());
        assertTrue(inventory.gpus());
        List<String> slots = inventory.devices().stream().map(d -> d.executorId() + "/" + d.address()).toList();
        assertEquals(List.of("0/0", "0/1", "1/0", "1/1"), slots);
        assertEquals(1, inventory.nodes()); // both executors run on this host
    }

    @Test
    void allReduceAcrossExecutorsGivesTheExactSumOnEveryRank() {
        // devices 1 and 2 are on different executors
        List<DeviceSlot> mesh = List.of(inventory.device(1), inventory.device(2));
        List<float[]> inputs = List.of(new float[]{1f, 2f, 3f}, new float[]{10f, 20f, 30.5f});
        List<RankResult<float[]>> results = runner.run("allreduce_test", "all-reduce test", mesh, inputs,
                (context, input) -> {
                    float[] buffer = input.clone();
                    context.communicator().allReduceSum(buffer);
                    return buffer;
                });
        assertEquals(2, results.size());
        for (RankResult<float[]> r : results) {
            assertArrayEquals(new float[]{11f, 22f, 33.5f}, r.value());
            assertEquals(mesh.get(r.rank()).executorId(), r.executorId(), "rank " + r.rank() + " ran off its device");
        }
        assertNotEquals(results.get(0).executorId(), results.get(1).executorId());
        assertTrue(jobDescriptions.contains("all-reduce test"), jobDescriptions.toString());
    }

    @Test
    void modelShardsStayInTheirExecutorBetweenStages() {
        List<DeviceSlot> mesh = List.of(inventory.device(0), inventory.device(3));
        List<Integer> ranks = List.of(0, 1);
        List<RankResult<Boolean>> first = runner.run("store_put", "store: load", mesh, ranks, (context, rank) -> {
            ModelStore.Key key = new ModelStore.Key("store-test", 7, "dp2.tp1.pp1", rank);
            ModelStore.get().remove(key);
            float[] shard = ModelStore.get().getOrLoad(key, () -> new float[]{rank, 7f});
            return shard[1] == 7f;
        });
        List<RankResult<float[]>> second = runner.run("store_get", "store: find", mesh, ranks, (context, rank) -> {
            ModelStore.Key key = new ModelStore.Key("store-test", 7, "dp2.tp1.pp1", rank);
            float[] shard = ModelStore.get().find(key);
            return shard == null ? new float[0] : shard;
        });
        for (int r = 0; r < 2; r++) {
            assertTrue(first.get(r).value());
            assertEquals(first.get(r).executorId(), second.get(r).executorId());
            assertArrayEquals(new float[]{r, 7f}, second.get(r).value(), "rank " + r + " lost its shard");
        }
    }

    @Test
    void callsOnDisjointDevicesRunAtTheSameTime() throws Exception {
        // Each call's ranks wait for a marker that only the other call's ranks write: if the two
        // calls did not run at once, they would time out.
        Path markers = Files.createTempDirectory("concurrent-calls");
        List<CallScheduler.Call> calls = List.of(
                concurrentCall("left_call", Set.of(0, 2), markers, "right_call"),
                concurrentCall("right_call", Set.of(1, 3), markers, "left_call"));
        try (CallScheduler scheduler = new CallScheduler(4)) {
            Map<String, CallScheduler.Outcome> outcomes = scheduler.runAll(calls);
            assertEquals(Set.of("left_call", "right_call"), outcomes.keySet());
            for (CallScheduler.Outcome o : outcomes.values()) {
                assertEquals(2, ((List<?>) o.value()).size());
            }
        }
        assertTrue(jobDescriptions.contains("left_call iteration 0"), jobDescriptions.toString());
        assertTrue(jobDescriptions.contains("right_call iteration 0"), jobDescriptions.toString());
        assertTrue(jobGroups.stream().anyMatch(g -> g.startsWith("spark-rlhf-left_call-")), jobGroups.toString());
    }

    private CallScheduler.Call concurrentCall(String name, Set<Integer> devices, Path markers, String other) {
        List<DeviceSlot> mesh = devices.stream().sorted().map(inventory::device).toList();
        String dir = markers.toString();
        return new CallScheduler.Call(name, List.of(), devices, () -> runner.run(name, name + " iteration 0", mesh,
                List.of(0, 1), (context, ignored) -> {
                    Files.writeString(Path.of(dir, name + "-" + context.rank()), "started");
                    long deadline = System.currentTimeMillis() + 60_000;
                    while (!Files.exists(Path.of(dir, other + "-" + context.rank()))) {
                        if (System.currentTimeMillis() > deadline) {
                            throw new IOException(name + ": " + other + " never ran at the same time");
                        }
                        Thread.sleep(50);
                    }
                    Communicator comm = context.communicator();
                    comm.barrier();
                    return context.gpuAddress();
                }));
    }
}
