package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * Tasks that Spark gives a GPU (the test cluster's fake GPUs) on a machine without a CUDA driver:
 * a call that builds no model runs (device discovery does), and one that builds a model fails
 * with the executor, the GPU and the driver's reason, instead of running on the CPU engine.
 */
@Tag("local-cluster")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class GpuTasksWithoutDriverLocalClusterTest {
    private SparkContext sc;
    private BarrierCallRunner runner;
    private ClusterInventory inventory;

    @BeforeAll
    void start() {
        assumeFalse(CudaBackend.isAvailable(), "this machine has a CUDA driver: its GPUs are not the fake ones");
        sc = TestSpark.localCluster("GpuTasksWithoutDriverLocalClusterTest");
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
    void ranksRunOnTheirTasksGpuAndAModelThereIsAClearError() {
        DeviceSlot device = inventory.device(3);
        List<RankResult<String>> devices = runner.run("device_test", "device test", List.of(device), List.of(0),
                (context, ignored) -> context.device());
        // the GPU Spark gave the task (any free one of its executor's), not a setting
        assertEquals(devices.get(0).gpuAddress(), devices.get(0).value());
        assertTrue(List.of("0", "1").contains(devices.get(0).value()), devices.toString());

        Exception e = assertThrows(Exception.class, () -> runner.run("model_test", "model test", List.of(device),
                List.of(0), (context, ignored) -> context.backend().name()));
        String message = String.valueOf(e.getMessage());
        assertTrue(message.matches("(?s).*executor \\d+ was given GPU [01] but cannot run the CUDA backend there: .*"),
                message);
        assertTrue(message.contains(CudaBackend.unavailableReason()), message);
    }
}
