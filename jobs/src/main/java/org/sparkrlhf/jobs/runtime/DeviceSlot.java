package org.sparkrlhf.jobs.runtime;

import java.io.Serializable;

/**
 * One device of the cluster as the driver sees it: a GPU of an executor, or a CPU task slot when
 * the executors have no GPUs. {@code index} is its position in the cluster's device list (the
 * index a plan's meshes use); {@code node} numbers the hosts in the same order.
 */
public record DeviceSlot(int index, int node, String host, String executorId, String address, boolean gpu)
        implements Serializable {

    /** Spark's preferred-location string for a task that must run on this slot's executor. */
    public String taskLocation() {
        return "executor_" + host + "_" + executorId;
    }

    @Override
    public String toString() {
        return "device " + index + " (" + (gpu ? "gpu " : "cpu slot ") + address + " of executor " + executorId
                + " on " + host + ")";
    }
}
