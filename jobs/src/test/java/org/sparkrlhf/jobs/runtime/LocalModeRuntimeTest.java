package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The embedded runtime: Spark's local mode, CPU slots, no resource profiles. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class LocalModeRuntimeTest {
    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;

    @BeforeAll
    void start() {
        sc = TestSpark.local("LocalModeRuntimeTest", 2);
        runner = new BarrierCallRunner(sc, false, BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), 30_000);
        inventory = ClusterDiscovery.discover(sc, runner, 10_000);
    }

    @AfterAll
    void stop() {
        if (sc != null) {
            sc.stop();
        }
    }

    @Test
    void twoCpuSlotsOfTheDriver() {
        assertFalse(inventory.gpus());
        assertEquals(List.of("driver/cpu0", "driver/cpu1"),
                inventory.devices().stream().map(d -> d.executorId() + "/" + d.address()).toList());
    }

    @Test
    void barrierCallWithTcpAllReduce() {
        List<RankResult<float[]>> results = runner.run("allreduce_local", "all-reduce (local)", inventory.devices(),
                List.of(new float[]{0.5f, -1f}, new float[]{0.25f, 3f}), (context, input) -> {
                    float[] buffer = input.clone();
                    context.communicator().allReduceSum(buffer);
                    return buffer;
                });
        for (RankResult<float[]> r : results) {
            assertArrayEquals(new float[]{0.75f, 2f}, r.value());
            assertNull(r.gpuAddress());
        }
    }
}
