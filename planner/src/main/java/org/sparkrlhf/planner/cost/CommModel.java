package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.spec.ClusterSpec;

/**
 * Times of collectives and transfers. Ring algorithms move {@code 2(n-1)/n} (all-reduce) or
 * {@code (n-1)/n} (all-gather, reduce-scatter) of the buffer through every member's link; a group that
 * spans nodes is limited by each device's network interface (one NIC per GPU on the presets), a group
 * inside a node by its NVLink share. Latency grows with the log of the group (NCCL's trees for small
 * messages). A profile's all-reduces through the runtime's communicator replace the links' figures.
 */
public final class CommModel {
    /** Bytes of a parameter in the planner's reallocations and weights (bf16). */
    public static final int PARAM_BYTES = 2;
    private final ClusterSpec cluster;
    private final double eff;
    private final double reallocIntra;
    private final double reallocInter;
    private final RuntimeCosts.Link intra;
    private final RuntimeCosts.Link inter;

    public CommModel(ClusterSpec cluster, CostConstants k) {
        this.cluster = cluster;
        this.eff = k.networkEfficiency();
        this.intra = k.allReduceIntra();
        this.inter = k.allReduceInter();
        this.reallocIntra = Double.isNaN(k.reallocIntraParams()) ? bandwidth(false) : k.reallocIntraParams() * PARAM_BYTES;
        this.reallocInter = Double.isNaN(k.reallocInterParams()) ? bandwidth(true) : k.reallocInterParams() * PARAM_BYTES;
    }

    private double bandwidth(boolean crossNode) {
        RuntimeCosts.Link m = crossNode ? inter : intra;
        if (m.measured()) {
            return m.bytesPerSecond();
        }
        return (crossNode ? cluster.interNodeBandwidth() : cluster.intraNodeBandwidth()) * eff;
    }

    /** A measured two-device all-reduce's latency is {@code 2 a}: one step of the log-depth tree and one more. */
    private double latency(boolean crossNode, int n) {
        RuntimeCosts.Link m = crossNode ? inter : intra;
        double a = m.measured() ? m.latencySeconds() / 2
                : crossNode ? cluster.interNodeLatency() : cluster.intraNodeLatency();
        return a * (1 + Math.ceil(Math.log(n) / Math.log(2)));
    }

    /** All-reduce of a {@code bytes} buffer over {@code n} devices. */
    public double allReduce(double bytes, int n, boolean crossNode) {
        if (n <= 1) {
            return 0;
        }
        return 2.0 * (n - 1) / n * bytes / bandwidth(crossNode) + latency(crossNode, n);
    }

    /** All-gather whose gathered (output) buffer is {@code bytes}; a reduce-scatter costs the same. */
    public double allGather(double bytes, int n, boolean crossNode) {
        if (n <= 1) {
            return 0;
        }
        return (double) (n - 1) / n * bytes / bandwidth(crossNode) + latency(crossNode, n);
    }

    public double reduceScatter(double bytes, int n, boolean crossNode) {
        return allGather(bytes, n, crossNode);
    }

    /** One point-to-point send. */
    public double send(double bytes, boolean crossNode) {
        return bytes / bandwidth(crossNode) + latency(crossNode, 1);
    }

    public double intraBandwidth() {
        return bandwidth(false);
    }

    public double interBandwidth() {
        return bandwidth(true);
    }

    /**
     * Bytes/s ({@link #PARAM_BYTES} a parameter) a reallocation moves between two devices (inside a
     * node or across nodes): measured through the runtime's reallocation path when the constants have
     * it, else the link's.
     */
    public double reallocBandwidth(boolean crossNode) {
        return crossNode ? reallocInter : reallocIntra;
    }
}
