package org.sparkrlhf.planner.plan;

import org.sparkrlhf.planner.cost.CallCostModel;
import org.sparkrlhf.planner.cost.CommModel;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.realloc.ReallocationPlanner;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything a plan is for: the algorithm's graph, the model of every role, the cluster, the batch, and
 * the cost model's constants and profile. Caches reallocation costs (they depend on the two layouts and
 * meshes only).
 */
public final class PlanningProblem {
    private final DataflowGraph graph;
    private final Map<String, ModelSpec> models;
    private final ClusterSpec cluster;
    private final Workload workload;
    private final CallCostModel costModel;
    private final ReallocationPlanner reallocPlanner;
    private final boolean zero3;
    private final Map<String, ReallocCost> reallocCache = new HashMap<>();

    /**
     * The cost of a reallocation: seconds, and the devices of the source layout that send parameters (a
     * device that holds a copy nobody needs takes no part and stays free for other calls).
     */
    public record ReallocCost(double seconds, int[] senders) {
    }

    /** A problem whose plans may shard a data-parallel layout with ZeRO-3. */
    public PlanningProblem(DataflowGraph graph, Map<String, ModelSpec> models, ClusterSpec cluster, Workload workload,
                           CostConstants constants, ProfileTable profile) {
        this(graph, models, cluster, workload, constants, profile, true);
    }

    /**
     * A problem for a runtime that runs ZeRO-3 sharding ({@code zero3}) or not: without it, no
     * candidate, baseline or given plan has a ZeRO-3 layout ({@link #checkRunnable}), so the estimate
     * and the run describe the same layouts.
     */
    public PlanningProblem(DataflowGraph graph, Map<String, ModelSpec> models, ClusterSpec cluster, Workload workload,
                           CostConstants constants, ProfileTable profile, boolean zero3) {
        for (String role : graph.roles()) {
            if (!models.containsKey(role)) {
                throw new IllegalArgumentException("algorithm " + graph.algorithm() + " needs a model for role '" + role + "'");
            }
        }
        this.graph = graph;
        this.models = new LinkedHashMap<>(models);
        this.cluster = cluster;
        this.workload = workload;
        this.costModel = new CallCostModel(cluster, constants, profile);
        this.reallocPlanner = new ReallocationPlanner(cluster);
        this.zero3 = zero3;
    }

    /** Whether plans may use ZeRO-3 layouts (the runtime they are for shards parameters that way). */
    public boolean allowsZero3() {
        return zero3;
    }

    /**
     * An error naming {@code call} when its layout is one this problem's runtime does not run (a
     * ZeRO-3 layout where ZeRO-3 is not allowed).
     */
    public void checkRunnable(String call, ParallelStrategy layout) {
        if (layout.zero3() && !zero3) {
            throw new IllegalArgumentException("call " + call + ": layout " + layout.label() + " shards parameters, "
                    + "gradients and optimizer state with ZeRO-3, which this runtime does not run (it would keep whole "
                    + "data-parallel replicas, beyond the plan's memory estimate); give the call a dp x tp x pp layout "
                    + "(\"zero3\": false)");
        }
    }

    public DataflowGraph graph() {
        return graph;
    }

    public Map<String, ModelSpec> models() {
        return models;
    }

    public ModelSpec model(String role) {
        return models.get(role);
    }

    public ModelSpec modelOf(int call) {
        return models.get(graph.call(call).role());
    }

    public ClusterSpec cluster() {
        return cluster;
    }

    public Workload workload() {
        return workload;
    }

    public CallCostModel costModel() {
        return costModel;
    }

    public ReallocationPlanner reallocationPlanner() {
        return reallocPlanner;
    }

    /** How many distinct reallocations have been costed so far. */
    public int reallocationsCosted() {
        return reallocCache.size();
    }

    public boolean isHome(int call) {
        ModelCall c = graph.call(call);
        return graph.homeCall(c.role()) == call;
    }

    /** Seconds to move {@code role}'s bf16 parameters from one layout to another (0 when identical). */
    public double reallocSeconds(String role, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                 ParallelStrategy dst) {
        return reallocCost(role, srcMesh, src, dstMesh, dst).seconds();
    }

    /** Seconds and sending devices (global indices) of moving {@code role}'s parameters between two layouts. */
    public ReallocCost reallocCost(String role, DeviceMesh srcMesh, ParallelStrategy src, DeviceMesh dstMesh,
                                   ParallelStrategy dst) {
        if (srcMesh.equals(dstMesh) && src.sameLayout(dst)) {
            return new ReallocCost(0, new int[0]);
        }
        // The cluster is homogeneous and the cost depends on which devices share a node only: shifting both
        // meshes by whole nodes changes nothing, and meshes on disjoint sets of nodes can sit side by side.
        int g = cluster.gpusPerNode();
        int srcNodes = srcMesh.nodes(g);
        boolean shareNode = srcMesh.first() / g <= (dstMesh.end() - 1) / g && dstMesh.first() / g <= (srcMesh.end() - 1) / g;
        DeviceMesh s;
        DeviceMesh d;
        if (!shareNode) {
            s = new DeviceMesh(srcMesh.first() % g, srcMesh.size());
            d = new DeviceMesh(srcNodes * g + dstMesh.first() % g, dstMesh.size());
        } else {
            int shift = Math.min(srcMesh.first(), dstMesh.first()) / g * g;
            s = new DeviceMesh(srcMesh.first() - shift, srcMesh.size());
            d = new DeviceMesh(dstMesh.first() - shift, dstMesh.size());
        }
        String key = role + "|" + s.first() + "," + s.size() + "," + src.dp() + "," + src.tp() + ","
                + src.pp() + "," + src.zero3() + "|" + d.first() + "," + d.size() + "," + dst.dp() + ","
                + dst.tp() + "," + dst.pp() + "," + dst.zero3();
        ReallocCost v = reallocCache.get(key);
        if (v == null) {
            var sum = reallocPlanner.summarize(models.get(role), s, src, d, dst, CommModel.PARAM_BYTES);
            int count = 0;
            for (int x = s.first(); x < s.end(); x++) {
                count += sum.sentIntraNode(x) + sum.sentInterNode(x) > 0 ? 1 : 0;
            }
            int[] senders = new int[count];
            count = 0;
            for (int x = s.first(); x < s.end(); x++) {
                if (sum.sentIntraNode(x) + sum.sentInterNode(x) > 0) {
                    senders[count++] = x - s.first();
                }
            }
            v = new ReallocCost(sum.seconds(cluster, costModel.comm(), costModel.compute(),
                    costModel.constants().reallocOverhead()), senders);
            reallocCache.put(key, v);
        }
        // the cache holds senders relative to the source mesh
        int[] global = new int[v.senders().length];
        for (int i = 0; i < global.length; i++) {
            global[i] = srcMesh.first() + v.senders()[i];
        }
        return new ReallocCost(v.seconds(), global);
    }
}
