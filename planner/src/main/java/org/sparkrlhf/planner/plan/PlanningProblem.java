package org.sparkrlhf.planner.plan;

import org.sparkrlhf.planner.cost.CallCostModel;
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
    private final Map<String, Double> reallocCache = new HashMap<>();

    public PlanningProblem(DataflowGraph graph, Map<String, ModelSpec> models, ClusterSpec cluster, Workload workload,
                           CostConstants constants, ProfileTable profile) {
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
        if (srcMesh.equals(dstMesh) && src.sameLayout(dst)) {
            return 0;
        }
        // The cluster is homogeneous and the cost depends on which devices share a node only: shifting both
        // meshes by whole nodes changes nothing, and meshes on disjoint sets of nodes can sit side by side.
        int g = cluster.gpusPerNode();
        int srcNodes = srcMesh.nodes(g);
        boolean shareNode = srcMesh.first() / g <= (dstMesh.end() - 1) / g && dstMesh.first() / g <= (srcMesh.end() - 1) / g;
        if (!shareNode) {
            srcMesh = new DeviceMesh(srcMesh.first() % g, srcMesh.size());
            dstMesh = new DeviceMesh(srcNodes * g + dstMesh.first() % g, dstMesh.size());
        } else {
            int shift = Math.min(srcMesh.first(), dstMesh.first()) / g * g;
            srcMesh = new DeviceMesh(srcMesh.first() - shift, srcMesh.size());
            dstMesh = new DeviceMesh(dstMesh.first() - shift, dstMesh.size());
        }
        String key = role + "|" + srcMesh.first() + "," + srcMesh.size() + "," + src.dp() + "," + src.tp() + ","
                + src.pp() + "," + src.zero3() + "|" + dstMesh.first() + "," + dstMesh.size() + "," + dst.dp() + ","
                + dst.tp() + "," + dst.pp() + "," + dst.zero3();
        Double v = reallocCache.get(key);
        if (v == null) {
            v = reallocPlanner.summarize(models.get(role), srcMesh, src, dstMesh, dst, 2)
                    .seconds(cluster, costModel.comm(), costModel.compute(), costModel.constants().reallocOverhead());
            reallocCache.put(key, v);
        }
        return v;
    }
}
