package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TaskGpuAmountTest {
    @Test
    void oneGpuPerTaskOrNotSetIsAccepted() {
        assertDoesNotThrow(() -> TaskGpuAmount.check(null));
        assertDoesNotThrow(() -> TaskGpuAmount.check("1"));
        assertDoesNotThrow(() -> TaskGpuAmount.check(" 1.0 "));
    }

    @Test
    void aFractionIsRefusedSayingWhyAndWhatToSet() {
        assertEquals("spark.task.resource.gpu.amount=0.5 would run two tasks on one GPU at once, and they would share "
                + "its CUDA backend, which one thread at a time may use (one stream, one decode graph captured at a "
                + "time); set spark.task.resource.gpu.amount=1: a rank needs a GPU to itself",
                assertThrows(IllegalArgumentException.class, () -> TaskGpuAmount.check("0.5")).getMessage());
        assertEquals("spark.task.resource.gpu.amount=2: a rank runs on exactly one GPU; set spark.task.resource.gpu.amount=1",
                assertThrows(IllegalArgumentException.class, () -> TaskGpuAmount.check("2")).getMessage());
        assertEquals("spark.task.resource.gpu.amount='half' is not a number; set spark.task.resource.gpu.amount=1",
                assertThrows(IllegalArgumentException.class, () -> TaskGpuAmount.check("half")).getMessage());
    }

    @Test
    void theRunConfigsValueIsChecked() {
        assertThrows(IllegalArgumentException.class,
                () -> TaskGpuAmount.checkBeforeSpark(Map.of("spark.task.resource.gpu.amount", "0.25")));
    }

    @Test
    void theClustersExpectationRefusesAFraction() {
        SparkConf conf = new SparkConf().setMaster("spark://m:7077").set("spark.executor.instances", "2")
                .set("spark.executor.cores", "16").set("spark.executor.resource.gpu.amount", "8");
        assertEquals(new ClusterDiscovery.Expectation(2, 8, true), ClusterDiscovery.expect(conf.clone()
                .set("spark.task.resource.gpu.amount", "1")));
        assertThrows(IllegalArgumentException.class, () -> ClusterDiscovery.expect(conf.clone()
                .set("spark.task.resource.gpu.amount", "0.5")));
    }
}
