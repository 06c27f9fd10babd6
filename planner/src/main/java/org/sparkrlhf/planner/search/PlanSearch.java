package org.sparkrlhf.planner.search;

import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.sim.Simulator;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Markov-chain Monte Carlo over the per-call choices, as ReaL searches: the state is one candidate per
 * call, the energy the simulated iteration time. Each step proposes one of these moves:
 * <ol>
 *   <li>a call to any of its candidates;</li>
 *   <li>a call to the same layout on another mesh of the same size;</li>
 *   <li>a call to another layout or micro-batching on the same mesh;</li>
 *   <li>a call to the mesh of another call;</li>
 *   <li>a call to a mesh beside another call's (same size, disjoint, so both can run at once);</li>
 *   <li>(a call reallocated from its home) back to exactly its home's layout, which removes the
 *   reallocation;</li>
 *   <li>a call together with the calls of its role that share its mesh and layout (a trained model and
 *   the calls that run on its training layout move as one, so no reallocation appears);</li>
 *   <li>every call on one mesh swapped with every call on another mesh of the same size (or moved there
 *   when it is free).</li>
 * </ol>
 * A proposal is accepted when it is faster, else with probability {@code exp(-(t' - t) / (temperature
 * * t))} (Metropolis); a chain that has not improved for a while restarts from the best state found,
 * every other time with two calls shaken to random choices.
 * <p>
 * Starting points: the seed plans (the baselines where valid), each call's fastest candidate, and
 * heuristic plans: the cluster cut in two (halves of a node, or whole nodes), each role on one side,
 * with and without generation on every device, improved by coordinate descent over the candidates on
 * the meshes each plan uses. Half of the budget runs one chain from each of the best few starting
 * points, the rest continues from the best state found. The best starting point is never lost, so the result is never slower than the seeds.
 * Seeded; bounded by wall time and optionally by a step count (then reproducible).
 */
public final class PlanSearch {
    /** Chains run in the first half of the budget, one from each of the best distinct starting points. */
    static final int STARTS = 4;
    /** Heuristic plans improved by coordinate descent before the chains start. */
    static final int DESCENDED = 8;

    private final CandidateSpace space;
    private final Simulator sim;
    private final double temperature;
    private final int restartAfter;
    private final int n;
    private final int[] home;
    private final int[] roleOf;
    private final int[][] callsOfRole;

    private int[] best;
    private Candidate[] bestA;
    private double bestT;
    private long steps;

    public PlanSearch(CandidateSpace space, Simulator sim) {
        this(space, sim, 0.01, 3000);
    }

    public PlanSearch(CandidateSpace space, Simulator sim, double temperature, int restartAfter) {
        this.space = space;
        this.sim = sim;
        this.temperature = temperature;
        this.restartAfter = restartAfter;
        DataflowGraph g = space.problem().graph();
        this.n = g.size();
        this.home = new int[n];
        this.roleOf = new int[n];
        List<String> roles = g.roles();
        this.callsOfRole = new int[roles.size()][];
        for (int r = 0; r < roles.size(); r++) {
            callsOfRole[r] = g.callsOnRole(roles.get(r)).stream().mapToInt(Integer::intValue).toArray();
            for (int c : callsOfRole[r]) {
                roleOf[c] = r;
            }
        }
        for (int c = 0; c < n; c++) {
            home[c] = g.homeCall(g.call(c).role());
        }
    }

    /** A state of the chain: candidate indices, the candidates, and the iteration time. */
    private record State(int[] idx, Candidate[] cands, double seconds) {
    }

    /**
     * Searches from the best of {@code seeds} (entries may be null), the all-fastest assignment and the
     * heuristic plans, for at most {@code seconds} of wall time and {@code maxSteps} proposals.
     */
    public SearchResult search(long seed, double seconds, long maxSteps, List<Candidate[]> seeds) {
        long t0 = System.nanoTime();
        long deadline = t0 + (long) (seconds * 1e9);
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int c = 0; c < n; c++) {
            if (space.candidates(c).isEmpty()) {
                return new SearchResult(null, Double.POSITIVE_INFINITY, 0, 0);
            }
        }
        List<State> starts = new ArrayList<>();
        int[] fastest = new int[n];
        for (int c = 0; c < n; c++) {
            fastest[c] = space.fastest(c);
        }
        starts.add(state(fastest));
        for (Candidate[] s : seeds) {
            if (s == null) {
                continue;
            }
            int[] idx = new int[n];
            for (int c = 0; c < n; c++) {
                idx[c] = indexOf(c, s[c]);
                if (idx[c] < 0) {
                    throw new IllegalArgumentException("a seed plan uses a choice outside the candidate space");
                }
            }
            starts.add(state(idx));
        }
        starts.addAll(heuristicStarts(deadline));
        starts.sort((a, b) -> Double.compare(a.seconds, b.seconds));
        List<State> chosen = new ArrayList<>();
        for (State s : starts) {
            boolean dup = false;
            for (State o : chosen) {
                dup |= Arrays.equals(o.idx, s.idx);
            }
            if (!dup && (chosen.isEmpty() || Double.isFinite(s.seconds))) {
                chosen.add(s);
            }
            if (chosen.size() == STARTS) {
                break;
            }
        }
        best = chosen.get(0).idx.clone();
        bestA = chosen.get(0).cands.clone();
        bestT = chosen.get(0).seconds;
        steps = 0;
        // first half: one chain from each starting point; then the rest from the best state found
        long remaining = deadline - System.nanoTime();
        long phaseSteps = maxSteps == Long.MAX_VALUE ? Long.MAX_VALUE : maxSteps / 2 / chosen.size();
        long phaseStart = System.nanoTime();
        for (int k = 0; k < chosen.size(); k++) {
            long until = phaseStart + remaining / 2 * (k + 1) / chosen.size();
            State s = chosen.get(k);
            chain(s.idx.clone(), s.cands.clone(), s.seconds, phaseSteps, Math.min(until, deadline), rnd);
        }
        chain(best.clone(), bestA.clone(), bestT, maxSteps == Long.MAX_VALUE ? Long.MAX_VALUE : maxSteps - steps,
                deadline, rnd);
        double elapsed = (System.nanoTime() - t0) / 1e9;
        return new SearchResult(Double.isFinite(bestT) ? bestA : null, bestT, steps, elapsed);
    }

    private State state(int[] idx) {
        Candidate[] a = new Candidate[n];
        for (int c = 0; c < n; c++) {
            a[c] = space.candidate(c, idx[c]);
        }
        return new State(idx, a, sim.iterationSeconds(a));
    }

    /** One Metropolis chain from (cur, curA, curT) for at most {@code maxSteps} proposals or until {@code deadline}. */
    private void chain(int[] cur, Candidate[] curA, double curT, long maxSteps, long deadline, SplittableRandom rnd) {
        long sinceBest = 0;
        int[] nextIdx = new int[n];
        Candidate[] next = new Candidate[n];
        if (curT < bestT) {
            bestT = curT;
            best = cur.clone();
            bestA = curA.clone();
        }
        for (long s = 0; s < maxSteps; s++) {
            if ((s & 255) == 0 && System.nanoTime() > deadline) {
                break;
            }
            steps++;
            System.arraycopy(cur, 0, nextIdx, 0, n);
            if (!propose(rnd.nextInt(n), cur, curA, nextIdx, rnd)) {
                continue;
            }
            for (int c = 0; c < n; c++) {
                next[c] = nextIdx[c] == cur[c] ? curA[c] : space.candidate(c, nextIdx[c]);
            }
            // Metropolis with the threshold drawn first: accept iff t <= curT (1 - temperature ln u), which
            // is accepting a slower state with probability exp(-(t - curT) / (temperature curT)); a proposal
            // over the threshold even with its new reallocations at their floor is rejected without costing them
            double threshold = Double.isFinite(curT)
                    ? curT * (1 - temperature * Math.log(1 - rnd.nextDouble())) : Double.MAX_VALUE;
            double t = sim.optimisticIterationSeconds(next);
            if (t <= threshold && sim.lastWasUnderestimated()) {
                t = sim.iterationSeconds(next);
            }
            if (t <= threshold) {
                System.arraycopy(nextIdx, 0, cur, 0, n);
                System.arraycopy(next, 0, curA, 0, n);
                curT = t;
            }
            if (curT < bestT) {
                bestT = curT;
                best = cur.clone();
                bestA = curA.clone();
                sinceBest = 0;
            } else if (++sinceBest > restartAfter) {
                // restart from the best state, every other time shaken: two calls moved to random choices
                System.arraycopy(best, 0, cur, 0, n);
                System.arraycopy(bestA, 0, curA, 0, n);
                curT = bestT;
                if (rnd.nextBoolean()) {
                    for (int k = 0; k < 2; k++) {
                        int x = rnd.nextInt(n);
                        cur[x] = rnd.nextInt(space.candidates(x).size());
                        curA[x] = space.candidate(x, cur[x]);
                    }
                    curT = sim.iterationSeconds(curA);
                }
                sinceBest = 0;
            }
        }
    }

    /** The index of a seed's choice in the space (same mesh, strategy and estimate), or -1. */
    private int indexOf(int call, Candidate cand) {
        List<Candidate> l = space.candidates(call);
        for (int i : space.onMesh(call, cand.mesh())) {
            Candidate o = l.get(i);
            if (o.strategy().equals(cand.strategy()) && o.estimate().equals(cand.estimate())) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Fills {@code next} (a copy of {@code cur} on entry) with a proposal that changes call {@code c}
     * and possibly others; false when the move does not apply.
     */
    boolean propose(int c, int[] cur, Candidate[] curA, int[] next, SplittableRandom rnd) {
        List<Candidate> all = space.candidates(c);
        int move = rnd.nextInt(8);
        int prop;
        switch (move) {
            case 0 -> prop = rnd.nextInt(all.size());
            case 1 -> prop = pick(space.sameShape(c, cur[c]), rnd);
            case 2 -> prop = pick(space.onMesh(c, curA[c].mesh()), rnd);
            case 3 -> prop = pick(space.onMesh(c, curA[rnd.nextInt(n)].mesh()), rnd);
            case 4 -> {
                int other = rnd.nextInt(n);
                if (other == c) {
                    return false;
                }
                List<DeviceMesh> free = space.disjointMeshes(curA[other].mesh().size(), curA[other].mesh());
                prop = free.isEmpty() ? -1 : pick(space.onMesh(c, free.get(rnd.nextInt(free.size()))), rnd);
            }
            case 5 -> {
                int h = home[c];
                prop = h == c ? rnd.nextInt(all.size())
                        : space.find(c, curA[h].mesh(), curA[h].strategy(), rnd.nextBoolean());
            }
            case 6 -> {
                return moveWithRole(c, cur, curA, next, rnd);
            }
            default -> {
                return swapMeshes(c, cur, curA, next, rnd);
            }
        }
        if (prop < 0 || prop == cur[c]) {
            return false;
        }
        next[c] = prop;
        return true;
    }

    private static int pick(List<Integer> l, SplittableRandom rnd) {
        return l.isEmpty() ? -1 : l.get(rnd.nextInt(l.size()));
    }

    /**
     * Call {@code c} to a new candidate (any, the same layout elsewhere, or on another call's mesh), and
     * the other calls of its role that shared its mesh and layout to the same mesh and layout.
     */
    private boolean moveWithRole(int c, int[] cur, Candidate[] curA, int[] next, SplittableRandom rnd) {
        int prop = switch (rnd.nextInt(3)) {
            case 0 -> rnd.nextInt(space.candidates(c).size());
            case 1 -> pick(space.sameShape(c, cur[c]), rnd);
            default -> pick(space.onMesh(c, curA[rnd.nextInt(n)].mesh()), rnd);
        };
        if (prop < 0 || prop == cur[c]) {
            return false;
        }
        next[c] = prop;
        Candidate to = space.candidate(c, prop);
        Candidate from = curA[c];
        for (int d : callsOfRole[roleOf[c]]) {
            if (d == c || !curA[d].mesh().equals(from.mesh()) || !curA[d].strategy().sameLayout(from.strategy())) {
                continue;
            }
            int f = space.find(d, to.mesh(), to.strategy(), false);
            if (f >= 0) {
                next[d] = f;
            }
        }
        return true;
    }

    /**
     * Every call on call {@code c}'s mesh moves to another mesh of the same size that does not overlap it,
     * and every call on that mesh moves to {@code c}'s, each keeping its layout and micro-batching.
     */
    private boolean swapMeshes(int c, int[] cur, Candidate[] curA, int[] next, SplittableRandom rnd) {
        DeviceMesh x = curA[c].mesh();
        List<DeviceMesh> others = space.disjointMeshes(x.size(), x);
        if (others.isEmpty()) {
            return false;
        }
        DeviceMesh y = others.get(rnd.nextInt(others.size()));
        for (int d = 0; d < n; d++) {
            DeviceMesh m = curA[d].mesh();
            DeviceMesh to = m.equals(x) ? y : m.equals(y) ? x : null;
            if (to == null) {
                continue;
            }
            int f = space.moved(d, cur[d], to);
            if (f < 0) {
                return false;
            }
            next[d] = f;
        }
        return true;
    }

    /**
     * Heuristic starting points. The cluster is cut in two disjoint meshes A and B (two halves of a
     * node, or the first k nodes and the rest for k one node, a quarter, half and three quarters of the
     * nodes, and all nodes but one);
     * every role goes to A or B (all its calls together), and the generation calls either stay with their
     * role or use every device. Each call starts from the candidate of its mesh that a call on the
     * same role already uses, else its fastest (else, when that does not fit, the candidates that need the
     * least memory); the best of these plans are improved by {@link #descend coordinate descent}.
     */
    private List<State> heuristicStarts(long deadline) {
        var cluster = space.problem().cluster();
        int roles = callsOfRole.length;
        List<State> out = new ArrayList<>();
        if (roles > 6 || cluster.totalGpus() < 2) {
            return out;
        }
        List<DeviceMesh[]> splits = new ArrayList<>();
        int g = cluster.gpusPerNode();
        int nodes = cluster.nodes();
        if (nodes == 1) {
            splits.add(new DeviceMesh[]{new DeviceMesh(0, g / 2), new DeviceMesh(g / 2, g / 2)});
        } else {
            for (int k : new int[]{1, nodes / 4, nodes / 2, nodes - nodes / 4, nodes - 1}) {
                if (k >= 1 && k < nodes && splits.stream().noneMatch(s -> s[0].size() == k * g)) {
                    splits.add(new DeviceMesh[]{new DeviceMesh(0, k * g), new DeviceMesh(k * g, (nodes - k) * g)});
                }
            }
        }
        DeviceMesh everything = DeviceMesh.all(cluster);
        DataflowGraph graph = space.problem().graph();
        for (DeviceMesh[] split : splits) {
            for (int mask = 0; mask < (1 << roles); mask++) {
                for (boolean genAll : new boolean[]{false, true}) {
                    DeviceMesh[] mesh = new DeviceMesh[n];
                    for (int c = 0; c < n; c++) {
                        mesh[c] = genAll && graph.call(c).kind() == CallKind.GENERATE ? everything
                                : split[(mask >> roleOf[c]) & 1];
                    }
                    int[] idx = layoutsOn(mesh, false);
                    if (idx == null) {
                        continue;
                    }
                    State st = state(idx);
                    if (!Double.isFinite(st.seconds)) {
                        st = state(layoutsOn(mesh, true));
                    }
                    out.add(st);
                }
            }
            if (System.nanoTime() > deadline) {
                break;
            }
        }
        out.sort((a, b) -> Double.compare(a.seconds, b.seconds));
        List<State> improved = new ArrayList<>();
        double previous = Double.NaN;
        for (int i = 0; i < out.size() && improved.size() < DESCENDED && Double.isFinite(out.get(i).seconds); i++) {
            if (System.nanoTime() > deadline) {
                break;
            }
            // plans that tie exactly differ in a call off the critical path (generation with its role or on
            // every device, say): descending one of them is enough
            if (out.get(i).seconds == previous) {
                continue;
            }
            previous = out.get(i).seconds;
            improved.add(descend(out.get(i)));
        }
        return improved;
    }

    /**
     * Each call on its given mesh: the layout of its role's home when the home is there, else its fastest
     * candidate there (or, with {@code leastMemory}, the one that needs the least memory); null when a
     * call has no candidate on its mesh.
     */
    private int[] layoutsOn(DeviceMesh[] mesh, boolean leastMemory) {
        int[] idx = new int[n];
        for (int c = 0; c < n; c++) {
            if (home[c] == c) {
                idx[c] = bestOn(c, mesh[c], leastMemory);
                if (idx[c] < 0) {
                    return null;
                }
            }
        }
        for (int c = 0; c < n; c++) {
            if (home[c] != c) {
                Candidate h = space.candidate(home[c], idx[home[c]]);
                int f = h.mesh().equals(mesh[c]) ? space.find(c, mesh[c], h.strategy(), leastMemory) : -1;
                idx[c] = f >= 0 ? f : bestOn(c, mesh[c], leastMemory);
                if (idx[c] < 0) {
                    return null;
                }
            }
        }
        return idx;
    }

    /** The fastest candidate of call {@code c} on {@code mesh}, or the one with the smallest footprint. */
    private int bestOn(int c, DeviceMesh mesh, boolean leastMemory) {
        int best = -1;
        double bestV = Double.POSITIVE_INFINITY;
        boolean isHome = home[c] == c;
        for (int i : space.onMesh(c, mesh)) {
            var e = space.candidate(c, i).estimate();
            double v = leastMemory ? e.transientBytes() + (isHome ? e.homeStateBytes() : e.weightCopyBytes())
                    : e.seconds();
            if (v < bestV) {
                bestV = v;
                best = i;
            }
        }
        return best;
    }

    /**
     * Coordinate descent: each call in turn to the candidate that gives the shortest iteration among those
     * on the meshes the plan already uses (its own, its role's, the other side of the cut, every device).
     */
    private State descend(State s) {
        int[] idx = s.idx.clone();
        Candidate[] a = s.cands.clone();
        double t = s.seconds;
        for (int pass = 0; pass < 2; pass++) {
            for (int c = 0; c < n; c++) {
                List<Integer> options = new ArrayList<>();
                List<DeviceMesh> used = new ArrayList<>();
                for (Candidate x : a) {
                    if (!used.contains(x.mesh())) {
                        used.add(x.mesh());
                        options.addAll(space.onMesh(c, x.mesh()));
                    }
                }
                for (int i : options) {
                    if (i == idx[c]) {
                        continue;
                    }
                    Candidate old = a[c];
                    a[c] = space.candidate(c, i);
                    double u = sim.optimisticIterationSeconds(a);
                    if (u < t && sim.lastWasUnderestimated()) {
                        u = sim.iterationSeconds(a);
                    }
                    if (u < t) {
                        t = u;
                        idx[c] = i;
                    } else {
                        a[c] = old;
                    }
                }
            }
        }
        return new State(idx, a, t);
    }
}
