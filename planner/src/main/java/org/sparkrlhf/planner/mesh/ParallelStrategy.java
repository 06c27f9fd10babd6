package org.sparkrlhf.planner.mesh;

import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * How a call uses its mesh: {@code dp} data-parallel replicas of a model split {@code tp}-way by
 * tensor parallelism (inside a node) and {@code pp}-way into pipeline stages, each replica's batch cut
 * into {@code microBatches}. With {@code zero3} the mesh is pure data parallel and every parameter,
 * gradient and optimizer state is sharded over all replicas (ZeRO stage 3, as DeepSpeed-Chat runs).
 * Device order inside the mesh: tensor rank fastest, then data rank, then pipeline stage (Megatron's
 * order), so local rank {@code r = stage*dp*tp + data*tp + tensor}.
 */
public record ParallelStrategy(int dp, int tp, int pp, int microBatches, boolean zero3) {
    public ParallelStrategy {
        if (dp < 1 || tp < 1 || pp < 1 || microBatches < 1) {
            throw new IllegalArgumentException("dp, tp, pp and micro-batches must be >= 1, got dp=" + dp + " tp=" + tp
                    + " pp=" + pp + " mb=" + microBatches);
        }
        if (zero3 && (tp != 1 || pp != 1)) {
            throw new IllegalArgumentException("ZeRO-3 sharding is pure data parallel: tp and pp must be 1");
        }
    }

    public static ParallelStrategy of(int dp, int tp, int pp, int microBatches) {
        return new ParallelStrategy(dp, tp, pp, microBatches, false);
    }

    public int size() {
        return dp * tp * pp;
    }

    /** Same parameter layout (micro-batches do not move parameters). */
    public boolean sameLayout(ParallelStrategy o) {
        return dp == o.dp && tp == o.tp && pp == o.pp && zero3 == o.zero3;
    }

    public ParallelStrategy withMicroBatches(int mb) {
        return new ParallelStrategy(dp, tp, pp, mb, zero3);
    }

    /** Why this strategy cannot run {@code model} on {@code mesh}, or null if it can. */
    public String invalidReason(ModelSpec model, DeviceMesh mesh, ClusterSpec cluster) {
        if (size() != mesh.size()) {
            return "dp*tp*pp = " + size() + " but the mesh has " + mesh.size() + " devices";
        }
        if (tp > cluster.gpusPerNode() || cluster.gpusPerNode() % tp != 0) {
            return "tp " + tp + " must divide the " + cluster.gpusPerNode() + " devices of a node";
        }
        if (model.heads() % tp != 0 || model.kvHeads() % tp != 0) {
            return "tp " + tp + " must divide " + model.heads() + " heads and " + model.kvHeads() + " key/value heads";
        }
        if (pp > model.layers()) {
            return "pp " + pp + " exceeds the model's " + model.layers() + " layers";
        }
        return null;
    }

    public int localRank(int stage, int data, int tensor) {
        return stage * dp * tp + data * tp + tensor;
    }

    public int stageOf(int localRank) {
        return localRank / (dp * tp);
    }

    public int dataRankOf(int localRank) {
        return (localRank / tp) % dp;
    }

    public int tensorRankOf(int localRank) {
        return localRank % tp;
    }

    /** First layer of pipeline stage {@code s}: layers are cut into contiguous, balanced ranges. */
    public static int stageStart(int layers, int pp, int s) {
        return (int) ((long) s * layers / pp);
    }

    public String label() {
        return zero3 ? "dp" + dp + "(zero3)" : dp + "/" + tp + "/" + pp;
    }
}
