package org.sparkrlhf.planner.sim;

import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * List scheduling of {@link #ITERATIONS} unrolled iterations, as the runtime runs them (jobs'
 * {@code IterationDriver}); the iteration time is the steady-state period, (end of the last iteration
 * - end of the first) / (iterations - 1). An iteration starts when the previous one has ended (the
 * runtime writes its tables and checkpoints in between). Tasks are placed in order (iteration by
 * iteration, calls in topological order, each call preceded by the reallocation of its parameters when
 * its layout is not its role's home layout, once its inputs are ready); a task starts when its inputs
 * are ready (plus the time to move them when producer and consumer run on different devices) and when
 * every device it uses is free, so calls on overlapping meshes wait for each other and calls on
 * disjoint meshes overlap.
 * <p>
 * Dependencies: a call waits for the producers of its keys and for the previous call on its role (the
 * runtime runs a model's calls in the graph's order); the first call on a role in an iteration waits for
 * the last call on that role in the previous one; a reallocation holds the destination devices and the
 * source devices that send parameters (the reallocation planner's choice of sources), not the rest of the
 * source layout, as the runtime's reallocation stage does.
 * <p>
 * Where parameters come from, as in the runtime (jobs' {@code ModelResidency}): a trained role's calls
 * take its current version from its home layout (its train call's), by reallocation when their layout
 * differs. In the first iteration nothing holds the model yet: its first call loads it where it runs (a
 * load is not timed here) and the calls up to the train call take it from there. A frozen role's calls
 * load it where they run, once, and keep it: no reallocation.
 * <p>
 * Memory: a role's home state (training state of a trained role, weights of a frozen one) stays on its
 * home mesh; each call adds its transient bytes, and a parameter copy when reallocated. A plan where
 * some device would exceed the limit is infeasible.
 */
public final class Simulator {
    public static final int ITERATIONS = 4;

    private static final Set<String> PER_TOKEN_KEYS = Set.of("packed_input_ids", "packed_logprobs",
            "packed_ref_logprobs", "values", "greedy_input_ids");
    private static final Set<String> PER_TOKEN_BYTE_KEYS = Set.of("prompt_mask", "greedy_prompt_mask");

    private final PlanningProblem problem;
    private final DataflowGraph graph;
    private final int n;
    private final int[] topo;
    private final int[][] deps;
    private final double[][] depBytes;
    private final int[] roleIndex;
    private final int[] home;
    private final int[] previousOnRole;
    private final boolean[] firstOnRole;
    private final int[] firstCallOnRole;
    private final int[] positionOnRole;
    private final boolean[] trainedRole;
    private final int[] lastOnRole;
    private final String[] roles;
    private final double[] free;
    private final double[] resident;
    private final double memoryLimit;
    private final Map<Long, PlanningProblem.ReallocCost> reallocMemo = new HashMap<>();
    private final double interBw;
    private final double interLatency;

    public Simulator(PlanningProblem problem) {
        this.problem = problem;
        this.graph = problem.graph();
        this.n = graph.size();
        this.topo = graph.topologicalOrder();
        this.roles = graph.roles().toArray(new String[0]);
        this.roleIndex = new int[n];
        this.home = new int[n];
        this.previousOnRole = new int[n];
        this.firstOnRole = new boolean[n];
        this.lastOnRole = new int[roles.length];
        this.firstCallOnRole = new int[roles.length];
        this.positionOnRole = new int[n];
        this.trainedRole = new boolean[roles.length];
        for (int r = 0; r < roles.length; r++) {
            List<Integer> on = graph.callsOnRole(roles[r]);
            int h = graph.homeCall(roles[r]);
            for (int k = 0; k < on.size(); k++) {
                int c = on.get(k);
                roleIndex[c] = r;
                home[c] = h;
                firstOnRole[c] = k == 0;
                positionOnRole[c] = k;
                previousOnRole[c] = k == 0 ? -1 : on.get(k - 1);
            }
            lastOnRole[r] = on.get(on.size() - 1);
            firstCallOnRole[r] = on.get(0);
            trainedRole[r] = graph.call(h).kind() == org.sparkrlhf.planner.graph.CallKind.TRAIN;
        }
        this.deps = new int[n][];
        this.depBytes = new double[n][];
        Map<String, Integer> producers = graph.producers();
        long tokens = problem.workload().tokens();
        long seqs = problem.workload().sequences();
        for (int c = 0; c < n; c++) {
            deps[c] = graph.dependencies(c);
            depBytes[c] = new double[deps[c].length];
            ModelCall call = graph.call(c);
            for (String key : call.inputKeys()) {
                Integer p = producers.get(key);
                if (p == null) {
                    continue;
                }
                for (int j = 0; j < deps[c].length; j++) {
                    if (deps[c][j] == p) {
                        depBytes[c][j] += keyBytes(key, tokens, seqs);
                    }
                }
            }
        }
        this.free = new double[problem.cluster().totalGpus()];
        this.resident = new double[problem.cluster().totalGpus()];
        this.memoryLimit = problem.costModel().memoryLimit();
        this.interBw = problem.costModel().comm().interBandwidth();
        this.interLatency = problem.cluster().interNodeLatency();
        this.floorCost = new PlanningProblem.ReallocCost(problem.costModel().constants().reallocOverhead(), new int[0]);
    }

    static double keyBytes(String key, long tokens, long seqs) {
        if (PER_TOKEN_KEYS.contains(key)) {
            return 4.0 * tokens;
        }
        if (PER_TOKEN_BYTE_KEYS.contains(key)) {
            return tokens;
        }
        return 4.0 * seqs;
    }

    public PlanningProblem problem() {
        return problem;
    }

    /**
     * The call whose layout holds the parameters call {@code c} takes in iteration {@code it}, when they
     * must be moved (its layout differs), else -1: see the class comment.
     */
    private int reallocSource(Candidate[] a, int c, int it) {
        int r = roleIndex[c];
        if (!trainedRole[r]) {
            return -1;
        }
        int from = it == 0 && positionOnRole[c] <= positionOnRole[home[c]] ? firstCallOnRole[r] : home[c];
        if (from == c || a[c].mesh().equals(a[from].mesh()) && a[c].strategy().sameLayout(a[from].strategy())) {
            return -1;
        }
        return from;
    }

    /** Moving {@code c}'s role from {@code from}'s layout to {@code c}'s. */
    private PlanningProblem.ReallocCost realloc(Candidate[] a, int from, int c) {
        Candidate src = a[from];
        Candidate dst = a[c];
        int r = roleIndex[c];
        if (src.id() >= 0 && dst.id() >= 0) {
            long key = ((long) r << 50) ^ ((long) src.id() << 25) ^ dst.id();
            PlanningProblem.ReallocCost v = reallocMemo.get(key);
            if (v == null && lowerBound) {
                // its fixed overhead, on the destination devices only: a lower bound of its duration and devices
                underestimated = true;
                return floorCost;
            }
            if (v == null) {
                v = problem.reallocCost(roles[r], src.mesh(), src.strategy(), dst.mesh(), dst.strategy());
                reallocMemo.put(key, v);
            }
            return v;
        }
        return problem.reallocCost(roles[r], src.mesh(), src.strategy(), dst.mesh(), dst.strategy());
    }

    /** Iteration seconds of the assignment (one candidate per call), or +infinity if it does not fit. */
    public double iterationSeconds(Candidate[] a) {
        if (memoryViolation(a, null) != null) {
            return Double.POSITIVE_INFINITY;
        }
        return schedule(a, null);
    }

    private boolean lowerBound;
    private final PlanningProblem.ReallocCost floorCost;

    /**
     * Like {@link #iterationSeconds}, but a reallocation not costed yet counts as its fixed overhead only
     * (a lower bound of it): cheap, and, list scheduling being monotone in durations, a figure the exact
     * one rarely undercuts. The search uses it to reject a proposal before costing its reallocations.
     */
    public double optimisticIterationSeconds(Candidate[] a) {
        lowerBound = true;
        underestimated = false;
        try {
            return iterationSeconds(a);
        } finally {
            lowerBound = false;
        }
    }

    private boolean underestimated;

    /** Whether the last {@link #optimisticIterationSeconds} used a floor (else it was exact). */
    public boolean lastWasUnderestimated() {
        return underestimated;
    }

    /** The full simulation with per-call figures and the timeline. */
    public SimResult simulate(Candidate[] a) {
        double[] mem = new double[n];
        String why = memoryViolation(a, mem);
        double[] secs = new double[n];
        double[] re = new double[n];
        for (int c = 0; c < n; c++) {
            secs[c] = a[c].estimate().seconds();
            // the steady state's: what every iteration after the first moves
            int from = reallocSource(a, c, 1);
            re[c] = from >= 0 ? realloc(a, from, c).seconds() : 0;
        }
        List<TimelineEvent> events = new ArrayList<>();
        double t = schedule(a, events);
        return new SimResult(why == null ? t : Double.POSITIVE_INFINITY, secs, mem, re, events, why);
    }

    /**
     * Meshes are aligned powers of two inside a node or whole nodes, so every mesh of an assignment is a
     * union of blocks of the smallest mesh's size; the simulation tracks blocks instead of devices.
     */
    private int blockSize(Candidate[] a) {
        int b = Integer.MAX_VALUE;
        for (Candidate c : a) {
            b = Math.min(b, c.mesh().size());
        }
        for (Candidate c : a) {
            while (c.mesh().first() % b != 0 || c.mesh().size() % b != 0) {
                b /= 2;
            }
        }
        return Math.max(1, b);
    }

    private String memoryViolation(Candidate[] a, double[] peakOut) {
        int bs = blockSize(a);
        java.util.Arrays.fill(resident, 0);
        for (int c = 0; c < n; c++) {
            if (home[c] == c) {
                DeviceMesh m = a[c].mesh();
                double b = a[c].estimate().homeStateBytes();
                for (int g = m.first() / bs; g < m.end() / bs; g++) {
                    resident[g] += b;
                }
            }
        }
        String why = null;
        for (int c = 0; c < n; c++) {
            // a copy of the parameters in another layout than the home one, reallocated or loaded there
            boolean copy = home[c] != c && !(a[c].mesh().equals(a[home[c]].mesh())
                    && a[c].strategy().sameLayout(a[home[c]].strategy()));
            double need = a[c].estimate().transientBytes() + (copy ? a[c].estimate().weightCopyBytes() : 0);
            DeviceMesh m = a[c].mesh();
            double peak = 0;
            for (int g = m.first() / bs; g < m.end() / bs; g++) {
                peak = Math.max(peak, resident[g] + need);
            }
            if (peakOut != null) {
                peakOut[c] = peak;
            }
            if (peak > memoryLimit && why == null) {
                why = String.format("%s on devices %s needs %.1f GiB per device, more than the %.1f GiB allowed",
                        graph.call(c).name(), m.label(), peak / (1L << 30), memoryLimit / (1L << 30));
                if (peakOut == null) {
                    return why;
                }
            }
        }
        return why;
    }

    private double schedule(Candidate[] a, List<TimelineEvent> events) {
        block = blockSize(a);
        java.util.Arrays.fill(free, 0);
        double[] end = new double[n];
        double[] prevEnd = new double[n];
        double firstIterationEnd = 0;
        double makespan = 0;
        for (int it = 0; it < ITERATIONS; it++) {
            if (it == 1) {
                firstIterationEnd = makespan;
            }
            System.arraycopy(end, 0, prevEnd, 0, n);
            // the runtime starts an iteration when the previous one is done (its tables and checkpoint written)
            double iterationStart = makespan;
            for (int c : topo) {
                int r = roleIndex[c];
                double paramReady = firstOnRole[c] ? (it == 0 ? 0 : prevEnd[lastOnRole[r]]) : end[previousOnRole[c]];
                int from = reallocSource(a, c, it);
                DeviceMesh m = a[c].mesh();
                double ready = Math.max(paramReady, iterationStart);
                for (int j = 0; j < deps[c].length; j++) {
                    int p = deps[c][j];
                    double arrive = end[p];
                    if (!a[p].mesh().equals(m)) {
                        arrive += depBytes[c][j] / interBw + interLatency;
                    }
                    ready = Math.max(ready, arrive);
                }
                if (from >= 0) {
                    // the runtime moves the parameters when the call is about to run (its inputs ready): the
                    // destination devices and the source devices that send; a device of the source layout
                    // whose copy nobody needs stays free for other calls
                    PlanningProblem.ReallocCost rc = realloc(a, from, c);
                    double start = Math.max(ready, Math.max(busy(m), busy(rc.senders())));
                    double fin = start + rc.seconds();
                    occupy(m, fin);
                    occupy(rc.senders(), fin);
                    ready = Math.max(ready, fin);
                    makespan = Math.max(makespan, fin);
                    if (events != null) {
                        events.add(new TimelineEvent("realloc " + roles[r] + " -> " + graph.call(c).name(), true, it,
                                meshesOf(m, rc.senders()), start, fin));
                    }
                }
                double start = Math.max(ready, busy(m));
                double fin = start + a[c].estimate().seconds();
                occupy(m, fin);
                end[c] = fin;
                makespan = Math.max(makespan, fin);
                if (events != null) {
                    events.add(new TimelineEvent(graph.call(c).name(), false, it, List.of(m), start, fin));
                }
            }
        }
        // the steady-state period: iterations after the first, whose start-up has no overlap to exploit
        return (makespan - firstIterationEnd) / (ITERATIONS - 1);
    }

    private int block = 1;

    private double busy(DeviceMesh m) {
        double t = 0;
        for (int g = m.first() / block; g < m.end() / block; g++) {
            t = Math.max(t, free[g]);
        }
        return t;
    }

    private double busy(int[] devices) {
        double t = 0;
        for (int g : devices) {
            t = Math.max(t, free[g / block]);
        }
        return t;
    }

    private void occupy(int[] devices, double until) {
        for (int g : devices) {
            free[g / block] = until;
        }
    }

    /** {@code m} and the runs of consecutive {@code devices} outside it, as meshes for the timeline. */
    private static List<DeviceMesh> meshesOf(DeviceMesh m, int[] devices) {
        List<DeviceMesh> out = new ArrayList<>();
        out.add(m);
        int i = 0;
        while (i < devices.length) {
            if (m.contains(devices[i])) {
                i++;
                continue;
            }
            int j = i + 1;
            while (j < devices.length && devices[j] == devices[j - 1] + 1 && !m.contains(devices[j])) {
                j++;
            }
            out.add(new DeviceMesh(devices[i], j - i));
            i = j;
        }
        return out;
    }

    private void occupy(DeviceMesh m, double until) {
        for (int g = m.first() / block; g < m.end() / block; g++) {
            free[g] = until;
        }
    }
}
