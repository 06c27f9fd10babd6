package org.sparkrlhf.planner.search;

import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.util.List;

/**
 * The plans a user would pick without a planner.
 * <ul>
 *   <li>symmetric: every call on all devices with one Megatron layout, TP = the devices of a node (at most
 *   8), PP = the number of nodes, DP = 1 (the heuristic plans of ReaL's paper);</li>
 *   <li>colocated: every call on all devices, pure data parallel with ZeRO-3 sharding (DeepSpeed-Chat); for a
 *   runtime without ZeRO-3 ({@link PlanningProblem#allowsZero3}) plain data-parallel replicas.</li>
 * </ul>
 * Micro-batches are derived as for any candidate. A baseline is absent (null) when its layout is not
 * valid for a model or the plan does not fit in memory.
 */
public final class Baselines {
    private Baselines() {
    }

    public static ParallelStrategy symmetricLayout(ClusterSpec cluster) {
        int tp = Math.min(8, cluster.gpusPerNode());
        int pp = cluster.nodes();
        int dp = cluster.totalGpus() / (tp * pp);
        return ParallelStrategy.of(dp, tp, pp, 1);
    }

    public static ParallelStrategy colocatedLayout(ClusterSpec cluster) {
        return colocatedLayout(cluster, true);
    }

    public static ParallelStrategy colocatedLayout(ClusterSpec cluster, boolean zero3) {
        return new ParallelStrategy(cluster.totalGpus(), 1, 1, 1, zero3);
    }

    public static Candidate[] symmetric(PlanningProblem problem, Simulator sim) {
        return sameEverywhere(problem, sim, symmetricLayout(problem.cluster()));
    }

    public static Candidate[] colocated(PlanningProblem problem, Simulator sim) {
        if (problem.cluster().totalGpus() == 1) {
            return null;
        }
        return sameEverywhere(problem, sim, colocatedLayout(problem.cluster(), problem.allowsZero3()));
    }

    /**
     * Every call on all devices with {@code layout}, with the fastest micro-batching that fits: the
     * variants of each call are ranked fastest first (least memory last), and the plan takes the lowest
     * rank, the same for every call (a call with fewer variants keeps its last), that fits.
     */
    public static Candidate[] sameEverywhere(PlanningProblem problem, Simulator sim, ParallelStrategy layout) {
        if (layout.zero3() && !problem.allowsZero3()) {
            return null;
        }
        DeviceMesh all = DeviceMesh.all(problem.cluster());
        int n = problem.graph().size();
        List<List<CallEstimate>> variants = new java.util.ArrayList<>();
        int ranks = 0;
        for (int c = 0; c < n; c++) {
            ModelCall call = problem.graph().call(c);
            var model = problem.model(call.role());
            if (layout.invalidReason(model, all, problem.cluster()) != null) {
                return null;
            }
            List<CallEstimate> ests = problem.costModel().estimate(call, model, problem.workload(),
                    problem.graph().isTrainable(call.role()), all, layout, problem.isHome(c));
            if (ests.isEmpty()) {
                return null;
            }
            variants.add(ests);
            ranks = Math.max(ranks, ests.size());
        }
        for (int rank = 0; rank < ranks; rank++) {
            Candidate[] a = new Candidate[n];
            for (int c = 0; c < n; c++) {
                List<CallEstimate> ests = variants.get(c);
                CallEstimate e = ests.get(Math.min(rank, ests.size() - 1));
                a[c] = new Candidate(c, all, layout.withMicroBatches(e.microBatches()), e, -1);
            }
            if (Double.isFinite(sim.iterationSeconds(a))) {
                return a;
            }
        }
        return null;
    }

    /**
     * Why {@link #sameEverywhere} finds no plan with {@code layout}: the first call that cannot run
     * so (a layout the model does not allow, a batch that does not split over the data-parallel
     * ranks), else memory.
     */
    public static String whyNot(PlanningProblem problem, ParallelStrategy layout) {
        DeviceMesh all = DeviceMesh.all(problem.cluster());
        for (int c = 0; c < problem.graph().size(); c++) {
            ModelCall call = problem.graph().call(c);
            var model = problem.model(call.role());
            String invalid = layout.invalidReason(model, all, problem.cluster());
            if (invalid != null) {
                return "call " + call.name() + ": " + invalid;
            }
            try {
                problem.costModel().estimateFixed(call, model, problem.workload(), problem.graph().isTrainable(call.role()),
                        all, layout.withMicroBatches(1), problem.isHome(c));
            } catch (IllegalArgumentException e) {
                return e.getMessage();
            }
        }
        return "the models do not fit in the devices' memory";
    }
}
