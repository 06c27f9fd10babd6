package org.sparkrlhf.planner.search;

import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Every choice the search may make for every call: each valid mesh, each valid parameter layout on it
 * (dp x tp x pp with tp inside a node, and pure data parallel with ZeRO-3 where the problem allows it),
 * and the variants the cost
 * model keeps (fastest, least memory) that fit on their own. Estimates depend on the mesh size only,
 * so they are computed once per size and layout.
 */
public final class CandidateSpace {
    private final PlanningProblem problem;
    private final List<DeviceMesh> meshes;
    private final Map<DeviceMesh, Integer> meshIndex = new HashMap<>();
    private final List<ParallelStrategy> layouts = new ArrayList<>();
    private final Map<String, Integer> layoutIndex = new HashMap<>();
    private final List<List<Candidate>> perCall = new ArrayList<>();
    private final List<Map<Integer, List<Integer>>> byMesh = new ArrayList<>();
    private final List<Map<Long, List<Integer>>> byShape = new ArrayList<>();

    public CandidateSpace(PlanningProblem problem) {
        this.problem = problem;
        ClusterSpec cluster = problem.cluster();
        this.meshes = DeviceMesh.enumerate(cluster);
        for (int i = 0; i < meshes.size(); i++) {
            meshIndex.put(meshes.get(i), i);
        }
        DataflowGraph g = problem.graph();
        for (int c = 0; c < g.size(); c++) {
            ModelCall call = g.call(c);
            ModelSpec model = problem.model(call.role());
            boolean trainable = g.isTrainable(call.role());
            boolean home = problem.isHome(c);
            Map<String, List<CallEstimate>> memo = new HashMap<>();
            List<Candidate> list = new ArrayList<>();
            Map<Integer, List<Integer>> meshMap = new HashMap<>();
            Map<Long, List<Integer>> shapeMap = new HashMap<>();
            for (int mi = 0; mi < meshes.size(); mi++) {
                DeviceMesh mesh = meshes.get(mi);
                for (ParallelStrategy layout : layoutsFor(model, mesh, cluster, problem.allowsZero3())) {
                    int li = layoutId(layout);
                    String key = mesh.size() + ":" + li;
                    List<CallEstimate> ests = memo.computeIfAbsent(key, x -> problem.costModel()
                            .estimate(call, model, problem.workload(), trainable, mesh, layout, home));
                    for (int v = 0; v < ests.size(); v++) {
                        CallEstimate e = ests.get(v);
                        int idx = list.size();
                        list.add(new Candidate(c, mesh, layout.withMicroBatches(e.microBatches()), e, mi * 4096 + li));
                        meshMap.computeIfAbsent(mi, x -> new ArrayList<>()).add(idx);
                        long shape = ((long) mesh.size() << 32) | ((long) li << 4) | v;
                        shapeMap.computeIfAbsent(shape, x -> new ArrayList<>()).add(idx);
                    }
                }
            }
            perCall.add(list);
            byMesh.add(meshMap);
            byShape.add(shapeMap);
        }
    }

    /** Layouts valid for {@code model} on {@code mesh}: every dp x tp x pp and pure ZeRO-3 data parallel. */
    public static List<ParallelStrategy> layoutsFor(ModelSpec model, DeviceMesh mesh, ClusterSpec cluster) {
        return layoutsFor(model, mesh, cluster, true);
    }

    /** Layouts valid for {@code model} on {@code mesh}: every dp x tp x pp, and pure ZeRO-3 data parallel with {@code zero3}. */
    public static List<ParallelStrategy> layoutsFor(ModelSpec model, DeviceMesh mesh, ClusterSpec cluster, boolean zero3) {
        List<ParallelStrategy> r = new ArrayList<>();
        int size = mesh.size();
        for (int tp = 1; tp <= cluster.gpusPerNode() && tp <= size; tp *= 2) {
            if (size % tp != 0) {
                continue;
            }
            int rest = size / tp;
            for (int pp = 1; pp <= rest; pp++) {
                if (rest % pp != 0) {
                    continue;
                }
                ParallelStrategy s = ParallelStrategy.of(rest / pp, tp, pp, 1);
                if (s.invalidReason(model, mesh, cluster) == null) {
                    r.add(s);
                }
            }
        }
        if (zero3 && size > 1) {
            r.add(new ParallelStrategy(size, 1, 1, 1, true));
        }
        return r;
    }

    private int layoutId(ParallelStrategy s) {
        String k = s.dp() + "," + s.tp() + "," + s.pp() + "," + s.zero3();
        return layoutIndex.computeIfAbsent(k, x -> {
            layouts.add(s);
            return layouts.size() - 1;
        });
    }

    public PlanningProblem problem() {
        return problem;
    }

    public int calls() {
        return perCall.size();
    }

    public List<Candidate> candidates(int call) {
        return perCall.get(call);
    }

    public Candidate candidate(int call, int index) {
        return perCall.get(call).get(index);
    }

    /** Valid meshes of {@code size} devices that do not overlap {@code other}. */
    public List<DeviceMesh> disjointMeshes(int size, DeviceMesh other) {
        List<DeviceMesh> r = new ArrayList<>();
        for (DeviceMesh m : meshes) {
            if (m.size() == size && !m.overlaps(other)) {
                r.add(m);
            }
        }
        return r;
    }

    /** Candidates of {@code call} on the same mesh as {@code mesh}. */
    public List<Integer> onMesh(int call, DeviceMesh mesh) {
        Integer mi = meshIndex.get(mesh);
        return mi == null ? List.of() : byMesh.get(call).getOrDefault(mi, List.of());
    }

    /** Candidates of {@code call} with the same mesh size, layout and variant as candidate {@code index}. */
    public List<Integer> sameShape(int call, int index) {
        Candidate c = perCall.get(call).get(index);
        int li = c.id() % 4096;
        int v = 0;
        for (int i : onMesh(call, c.mesh())) {
            Candidate o = perCall.get(call).get(i);
            if (o.id() == c.id()) {
                if (i == index) {
                    break;
                }
                v++;
            }
        }
        long shape = ((long) c.mesh().size() << 32) | ((long) li << 4) | v;
        return byShape.get(call).getOrDefault(shape, List.of());
    }

    /** Every valid mesh of the cluster, smallest first. */
    public List<DeviceMesh> meshes() {
        return meshes;
    }

    /**
     * Candidate {@code index} of {@code call} moved to {@code mesh}: the same layout and variant (same
     * micro-batches and recomputation) on the other mesh, or -1 when the mesh has no such candidate.
     */
    public int moved(int call, int index, DeviceMesh mesh) {
        Candidate c = perCall.get(call).get(index);
        if (c.mesh().equals(mesh)) {
            return index;
        }
        if (c.mesh().size() != mesh.size()) {
            return -1;
        }
        for (int i : sameShape(call, index)) {
            if (perCall.get(call).get(i).mesh().equals(mesh)) {
                return i;
            }
        }
        return -1;
    }

    /**
     * The candidate of {@code call} on {@code mesh} with layout (dp, tp, pp, zero3) of {@code layout},
     * preferring the fastest variant, or -1 when there is none.
     */
    public int find(int call, DeviceMesh mesh, ParallelStrategy layout, boolean leastMemory) {
        int best = -1;
        for (int i : onMesh(call, mesh)) {
            Candidate c = perCall.get(call).get(i);
            if (!c.strategy().sameLayout(layout)) {
                continue;
            }
            if (best < 0) {
                best = i;
                continue;
            }
            Candidate b = perCall.get(call).get(best);
            boolean better = leastMemory
                    ? c.estimate().transientBytes() < b.estimate().transientBytes()
                    : c.estimate().seconds() < b.estimate().seconds();
            if (better) {
                best = i;
            }
        }
        return best;
    }

    /** Index of the fastest candidate of {@code call}, or -1 when none fits. */
    public int fastest(int call) {
        int best = -1;
        List<Candidate> l = perCall.get(call);
        for (int i = 0; i < l.size(); i++) {
            if (best < 0 || l.get(i).estimate().seconds() < l.get(best).estimate().seconds()) {
                best = i;
            }
        }
        return best;
    }
}
