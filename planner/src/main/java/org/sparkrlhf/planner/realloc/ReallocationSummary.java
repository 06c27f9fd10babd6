package org.sparkrlhf.planner.realloc;

import org.sparkrlhf.planner.cost.CommModel;
import org.sparkrlhf.planner.cost.ComputeModel;
import org.sparkrlhf.planner.spec.ClusterSpec;

/**
 * Bytes each device sends and receives in a reallocation, split by link: inside its node (NVLink) or
 * to another node (network), plus bytes it copies locally.
 */
public final class ReallocationSummary {
    final long[] sendIntra;
    final long[] sendInter;
    final long[] recvIntra;
    final long[] recvInter;
    final long[] local;

    ReallocationSummary(int gpus) {
        sendIntra = new long[gpus];
        sendInter = new long[gpus];
        recvIntra = new long[gpus];
        recvInter = new long[gpus];
        local = new long[gpus];
    }

    public long sentIntraNode(int gpu) {
        return sendIntra[gpu];
    }

    public long sentInterNode(int gpu) {
        return sendInter[gpu];
    }

    public long receivedIntraNode(int gpu) {
        return recvIntra[gpu];
    }

    public long receivedInterNode(int gpu) {
        return recvInter[gpu];
    }

    public long copiedLocally(int gpu) {
        return local[gpu];
    }

    /** Bytes that cross between devices. */
    public long movedBytes() {
        long s = 0;
        for (int g = 0; g < sendIntra.length; g++) {
            s += sendIntra[g] + sendInter[g];
        }
        return s;
    }

    public long interNodeBytes() {
        long s = 0;
        for (long v : sendInter) {
            s += v;
        }
        return s;
    }

    /**
     * Seconds of the reallocation: every device's NVLink and network interface run in parallel, each
     * direction separately; the slowest device decides; local copies read and write device memory.
     */
    public double seconds(ClusterSpec cluster, CommModel comm, ComputeModel compute, double fixedOverhead) {
        double worst = 0;
        boolean any = false;
        for (int g = 0; g < sendIntra.length; g++) {
            double intra = Math.max(sendIntra[g], recvIntra[g]) / comm.reallocBandwidth(false);
            double inter = Math.max(sendInter[g], recvInter[g]) / comm.reallocBandwidth(true);
            double copy = compute.memoryPass(2.0 * local[g]);
            worst = Math.max(worst, Math.max(intra, inter) + copy);
            any |= sendIntra[g] + sendInter[g] + local[g] > 0;
        }
        if (!any) {
            return 0;
        }
        double latency = movedBytes() > 0 ? cluster.interNodeLatency() : 0;
        return worst + latency + fixedOverhead;
    }
}
