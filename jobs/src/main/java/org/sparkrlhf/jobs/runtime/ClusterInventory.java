package org.sparkrlhf.jobs.runtime;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The devices the driver found: every GPU (or CPU task slot) of every executor, in a fixed order
 * (host, executor, address) so that device indices mean the same thing for the whole run.
 */
public record ClusterInventory(List<DeviceSlot> devices, boolean gpus) {
    public ClusterInventory {
        devices = List.copyOf(devices);
        for (int i = 0; i < devices.size(); i++) {
            if (devices.get(i).index() != i) {
                throw new IllegalArgumentException("device " + i + " has index " + devices.get(i).index());
            }
        }
    }

    public int size() {
        return devices.size();
    }

    public DeviceSlot device(int index) {
        if (index < 0 || index >= devices.size()) {
            throw new IllegalArgumentException("no device " + index + ": the cluster has " + devices.size()
                    + " devices (0.." + (devices.size() - 1) + ")");
        }
        return devices.get(index);
    }

    /** Number of hosts (a plan's nodes). */
    public int nodes() {
        return devices.isEmpty() ? 0 : devices.get(devices.size() - 1).node() + 1;
    }

    /** Devices per host, by node index. */
    public Map<Integer, Integer> devicesPerNode() {
        Map<Integer, Integer> counts = new TreeMap<>();
        for (DeviceSlot d : devices) {
            counts.merge(d.node(), 1, Integer::sum);
        }
        return counts;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder(devices.size() + (gpus ? " GPUs" : " CPU slots") + " on " + nodes() + " node(s):");
        for (DeviceSlot d : devices) {
            s.append("\n  ").append(d);
        }
        return s.toString();
    }
}
