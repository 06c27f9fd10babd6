package org.sparkrlhf.planner.spec;

/**
 * A homogeneous cluster: {@code nodes} machines with {@code gpusPerNode} devices each. Global device
 * index {@code g} is device {@code g % gpusPerNode} of node {@code g / gpusPerNode}. Bandwidths are
 * per device and per direction (bytes/s): intra-node is the device's share of NVLink (or shared memory),
 * inter-node its network interface. Latencies are per collective step (seconds).
 */
public record ClusterSpec(int nodes, int gpusPerNode, GpuSpec gpu, double intraNodeBandwidth, double intraNodeLatency,
                          double interNodeBandwidth, double interNodeLatency) {
    public ClusterSpec {
        if (nodes < 1 || gpusPerNode < 1) {
            throw new IllegalArgumentException("a cluster needs at least one node and one device per node, got "
                    + nodes + " x " + gpusPerNode);
        }
        if (Integer.bitCount(gpusPerNode) != 1) {
            throw new IllegalArgumentException("devices per node must be a power of two (1, 2, 4, 8, ...), got "
                    + gpusPerNode);
        }
        if (intraNodeBandwidth <= 0 || interNodeBandwidth <= 0 || intraNodeLatency < 0 || interNodeLatency < 0) {
            throw new IllegalArgumentException("bandwidths must be positive and latencies non-negative");
        }
    }

    /** Nodes of 8 H100 SXM: NVLink 4 (450 GB/s per direction per GPU), 8 x 400 Gb/s InfiniBand (one NIC per GPU). */
    public static ClusterSpec h100(int nodes, int gpusPerNode) {
        return new ClusterSpec(nodes, gpusPerNode, GpuSpec.h100(), 450e9, 8e-6, 50e9, 15e-6);
    }

    /** Nodes of 8 A100-80GB SXM: NVLink 3 (300 GB/s per direction per GPU), 8 x 200 Gb/s InfiniBand. */
    public static ClusterSpec a100(int nodes, int gpusPerNode) {
        return new ClusterSpec(nodes, gpusPerNode, GpuSpec.a100(), 300e9, 10e-6, 25e9, 20e-6);
    }

    /**
     * A small CPU cluster: {@code executors} Spark executors with {@code slots} task slots each; slots of
     * one executor share memory (a copy), executors talk over a 10 Gb/s network.
     */
    public static ClusterSpec cpu(int executors, int slots, long memoryPerSlot) {
        return new ClusterSpec(executors, slots, GpuSpec.cpu(memoryPerSlot), 5e9, 20e-6, 1.25e9, 100e-6);
    }

    /** A preset by device name ("h100", "a100", "cpu"). */
    public static ClusterSpec preset(String gpu, int nodes, int gpusPerNode) {
        return switch (gpu) {
            case "h100" -> h100(nodes, gpusPerNode);
            case "a100" -> a100(nodes, gpusPerNode);
            case "cpu" -> cpu(nodes, gpusPerNode, 8 * GpuSpec.GIB);
            default -> throw new IllegalArgumentException("unknown gpu '" + gpu + "'; known: " + GpuSpec.PRESETS);
        };
    }

    public ClusterSpec withGpuMemory(long bytes) {
        return new ClusterSpec(nodes, gpusPerNode, gpu.withMemory(bytes), intraNodeBandwidth, intraNodeLatency,
                interNodeBandwidth, interNodeLatency);
    }

    public int totalGpus() {
        return nodes * gpusPerNode;
    }

    public int nodeOf(int gpu) {
        return gpu / gpusPerNode;
    }

    public boolean sameNode(int a, int b) {
        return a / gpusPerNode == b / gpusPerNode;
    }
}
