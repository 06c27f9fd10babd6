package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClusterDiscoveryTest {
    @Test
    void slotsFromTheMasterAndConf() {
        assertEquals(new ClusterDiscovery.Expectation(1, 3, false),
                ClusterDiscovery.expect(new SparkConf().setMaster("local[3]")));
        assertEquals(new ClusterDiscovery.Expectation(2, 1, false),
                ClusterDiscovery.expect(new SparkConf().setMaster("local-cluster[2,2,1024]").set("spark.task.cpus", "2")));
        assertEquals(new ClusterDiscovery.Expectation(4, 8, true),
                ClusterDiscovery.expect(new SparkConf().setMaster("spark://m:7077").set("spark.executor.instances", "4")
                        .set("spark.executor.cores", "16").set("spark.executor.resource.gpu.amount", "8")));
    }

    @Test
    void setupsThatCannotWork() {
        assertTrue(assertThrows(IllegalStateException.class, () -> ClusterDiscovery.expect(new SparkConf()
                .setMaster("local[4]").set("spark.executor.resource.gpu.amount", "1"))).getMessage()
                .contains("local mode"));
        assertTrue(assertThrows(IllegalStateException.class, () -> ClusterDiscovery.expect(new SparkConf()
                .setMaster("yarn").set("spark.executor.instances", "2").set("spark.executor.cores", "4")
                .set("spark.dynamicAllocation.enabled", "true"))).getMessage()
                .contains("spark.dynamicAllocation.enabled must be false"));
        assertTrue(assertThrows(IllegalStateException.class, () -> ClusterDiscovery.expect(new SparkConf()
                .setMaster("spark://m:7077").set("spark.executor.instances", "2").set("spark.executor.cores", "4")
                .set("spark.executor.resource.gpu.amount", "8"))).getMessage()
                .contains("give at least 8 cores"));
    }

    @Test
    void inventoryIsOrderedByHostExecutorAndAddress() {
        ClusterInventory inv = ClusterDiscovery.inventory(List.of(
                new ClusterDiscovery.Found("b", "10", "1"), new ClusterDiscovery.Found("a", "2", "0"),
                new ClusterDiscovery.Found("b", "9", "0"), new ClusterDiscovery.Found("a", "2", "10"),
                new ClusterDiscovery.Found("a", "2", "2")), true);
        assertEquals(List.of("a/2/0", "a/2/2", "a/2/10", "b/9/0", "b/10/1"),
                inv.devices().stream().map(d -> d.host() + "/" + d.executorId() + "/" + d.address()).toList());
        assertEquals(2, inv.nodes());
        assertEquals(List.of(0, 0, 0, 1, 1), inv.devices().stream().map(DeviceSlot::node).toList());
        assertThrows(IllegalStateException.class, () -> ClusterDiscovery.inventory(List.of(
                new ClusterDiscovery.Found("a", "1", "0"), new ClusterDiscovery.Found("a", "1", "0")), true));
    }
}
