package org.sparkrlhf.jobs.plan;

import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;

import java.io.Serializable;
import java.util.List;

/**
 * Where and how one model function call runs: its devices (rank r runs on {@code devices.get(r)})
 * and its parallel layout, with the planner's device order inside the mesh (tensor rank fastest,
 * then data rank, then pipeline stage: rank = stage * dp * tp + data * tp + tensor).
 *
 * <p>{@link #key()} names the parameter layout on these devices; it is the layout part of the
 * executors' {@code ModelStore} keys, so a shard cut for one placement is never taken for
 * another's. Micro-batches do not change where parameters are, so they are not part of it.
 */
public record Placement(String call, String role, List<DeviceSlot> devices, int dp, int tp, int pp, int microBatches)
        implements Serializable {
    public Placement {
        devices = List.copyOf(devices);
        if (dp < 1 || tp < 1 || pp < 1 || microBatches < 1) {
            throw new IllegalArgumentException(call + ": dp, tp, pp and micro-batches must be >= 1, got dp=" + dp
                    + " tp=" + tp + " pp=" + pp + " micro_batches=" + microBatches);
        }
        if ((long) dp * tp * pp != devices.size()) {
            throw new IllegalArgumentException(call + ": dp * tp * pp = " + dp * tp * pp + " but the call has "
                    + devices.size() + " devices");
        }
    }

    /** Every call on {@code devices}, data parallel. */
    public static Placement dataParallel(String call, String role, List<DeviceSlot> devices) {
        return new Placement(call, role, devices, devices.size(), 1, 1, 1);
    }

    public int size() {
        return devices.size();
    }

    /** {@code dp2.tp1.pp1}: the layout alone. */
    public String layout() {
        return "dp" + dp + ".tp" + tp + ".pp" + pp;
    }

    /** The layout and the devices, e.g. {@code dp1.tp2.pp1@2,3}. */
    public String key() {
        StringBuilder s = new StringBuilder(layout()).append('@');
        for (int i = 0; i < devices.size(); i++) {
            s.append(i == 0 ? "" : ",").append(devices.get(i).index());
        }
        return s.toString();
    }

    public int[] deviceIndices() {
        int[] r = new int[devices.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = devices.get(i).index();
        }
        return r;
    }

    /** The rank running on global device {@code index}, or -1. */
    public int rankOf(int index) {
        for (int r = 0; r < devices.size(); r++) {
            if (devices.get(r).index() == index) {
                return r;
            }
        }
        return -1;
    }

    /** Same parameter layout on the same devices (micro-batches aside). */
    public boolean holdsSameShardsAs(Placement o) {
        return dp == o.dp && tp == o.tp && pp == o.pp && java.util.Arrays.equals(deviceIndices(), o.deviceIndices());
    }

    public int stageOf(int rank) {
        return rank / (dp * tp);
    }

    public int dataRankOf(int rank) {
        return (rank / tp) % dp;
    }

    public int tensorRankOf(int rank) {
        return rank % tp;
    }

    public int rank(int stage, int data, int tensor) {
        return stage * dp * tp + data * tp + tensor;
    }

    /**
     * One input per rank from one per data-parallel rank: the ranks of one data-parallel replica
     * (its tensor and pipeline ranks) work on the same rows.
     */
    public <T> List<T> perRank(List<T> perDataRank) {
        if (perDataRank.size() != dp) {
            throw new IllegalArgumentException(call + ": " + perDataRank.size() + " inputs for " + dp + " data-parallel ranks");
        }
        List<T> out = new java.util.ArrayList<>(size());
        for (int r = 0; r < size(); r++) {
            out.add(perDataRank.get(dataRankOf(r)));
        }
        return out;
    }

    /**
     * One result per data-parallel rank, in data-rank order: each replica's result as its last
     * pipeline stage's first tensor rank returned it (the rank that holds the replica's outputs).
     */
    public <R> List<R> perDataRank(List<org.sparkrlhf.jobs.runtime.RankResult<R>> results) {
        if (results.size() != size()) {
            throw new IllegalArgumentException(call + ": " + results.size() + " results from " + size() + " ranks");
        }
        List<R> out = new java.util.ArrayList<>(dp);
        for (int d = 0; d < dp; d++) {
            int r = rank(pp - 1, d, 0);
            if (results.get(r).rank() != r) {
                throw new IllegalStateException(call + ": results are not in rank order");
            }
            out.add(results.get(r).value());
        }
        return out;
    }

    /** The planner's strategy for this placement. */
    public ParallelStrategy strategy() {
        return ParallelStrategy.of(dp, tp, pp, microBatches);
    }

    /**
     * The planner's mesh: the devices must be consecutive global indices (the planner's meshes are);
     * a placement given by hand on scattered devices gets a clear error here.
     */
    public DeviceMesh mesh() {
        int first = devices.get(0).index();
        for (int i = 1; i < devices.size(); i++) {
            if (devices.get(i).index() != first + i) {
                throw new IllegalArgumentException(call + ": devices " + java.util.Arrays.toString(deviceIndices())
                        + " are not consecutive device indices in ascending order; the planner's layouts (and so "
                        + "reallocation between them) need consecutive devices");
            }
        }
        return new DeviceMesh(first, devices.size());
    }

    @Override
    public String toString() {
        return call + " (" + role + "): devices " + java.util.Arrays.toString(deviceIndices()) + " dp=" + dp + " tp=" + tp
                + " pp=" + pp + " micro_batches=" + microBatches;
    }
}
