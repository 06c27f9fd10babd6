package org.sparkrlhf.planner.search;

import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.sim.Simulator;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Markov-chain Monte Carlo over the per-call choices, as ReaL searches: the state is one candidate per
 * call, the energy the simulated iteration time. Each step changes one call by one of these moves:
 * any of its candidates; the same shape on another mesh of the same size; another layout on the same
 * mesh; the mesh of another call; a mesh beside another call's (same size, disjoint); (for a call
 * reallocated from its home) exactly its home's layout, which removes the reallocation. A move is
 * accepted when it is faster, else with probability {@code exp(-(t' - t) / (temperature * t))}
 * (Metropolis); a chain that has not improved for a while restarts from the best state found, every
 * other time with two calls shaken to random choices. The walk starts from the best of the seed plans (the baselines
 * where valid, and each call's fastest candidate), so it never returns anything slower than them.
 * Seeded; bounded by wall time and optionally by a step count (then reproducible).
 */
public final class PlanSearch {
    private final CandidateSpace space;
    private final Simulator sim;
    private final double temperature;
    private final int restartAfter;
    private final int[] home;

    public PlanSearch(CandidateSpace space, Simulator sim) {
        this(space, sim, 0.01, 3000);
    }

    public PlanSearch(CandidateSpace space, Simulator sim, double temperature, int restartAfter) {
        this.space = space;
        this.sim = sim;
        this.temperature = temperature;
        this.restartAfter = restartAfter;
        var g = space.problem().graph();
        this.home = new int[g.size()];
        for (int c = 0; c < g.size(); c++) {
            home[c] = g.homeCall(g.call(c).role());
        }
    }

    /**
     * Searches from the best of {@code seeds} (entries may be null) and the all-fastest assignment, for
     * at most {@code seconds} of wall time and {@code maxSteps} proposals.
     */
    public SearchResult search(long seed, double seconds, long maxSteps, List<Candidate[]> seeds) {
        long t0 = System.nanoTime();
        long deadline = t0 + (long) (seconds * 1e9);
        SplittableRandom rnd = new SplittableRandom(seed);
        int n = space.calls();
        for (int c = 0; c < n; c++) {
            if (space.candidates(c).isEmpty()) {
                return new SearchResult(null, Double.POSITIVE_INFINITY, 0, 0);
            }
        }
        int[] cur = new int[n];
        Candidate[] curA = new Candidate[n];
        for (int c = 0; c < n; c++) {
            cur[c] = space.fastest(c);
            curA[c] = space.candidate(c, cur[c]);
        }
        double curT = sim.iterationSeconds(curA);
        for (Candidate[] s : seeds) {
            if (s == null) {
                continue;
            }
            int[] idx = new int[n];
            Candidate[] mapped = new Candidate[n];
            boolean inSpace = true;
            for (int c = 0; c < n; c++) {
                idx[c] = indexOf(c, s[c]);
                inSpace &= idx[c] >= 0;
                mapped[c] = idx[c] >= 0 ? space.candidate(c, idx[c]) : null;
            }
            if (!inSpace) {
                throw new IllegalArgumentException("a seed plan uses a choice outside the candidate space");
            }
            double t = sim.iterationSeconds(mapped);
            if (t < curT) {
                curT = t;
                cur = idx;
                curA = mapped;
            }
        }
        int[] best = cur.clone();
        Candidate[] bestA = curA.clone();
        double bestT = curT;
        long steps = 0;
        long sinceBest = 0;
        Candidate[] next = curA.clone();
        while (steps < maxSteps) {
            if ((steps & 255) == 0 && System.nanoTime() > deadline) {
                break;
            }
            steps++;
            int c = rnd.nextInt(n);
            int prop = propose(c, cur, curA, rnd);
            if (prop < 0 || prop == cur[c]) {
                continue;
            }
            System.arraycopy(curA, 0, next, 0, n);
            next[c] = space.candidate(c, prop);
            // Metropolis with the threshold drawn first: accept iff t <= curT (1 - temperature ln u), which
            // is accepting a slower state with probability exp(-(t - curT) / (temperature curT)); a proposal
            // over the threshold even with its new reallocations at their floor is rejected without costing them
            double threshold = Double.isFinite(curT)
                    ? curT * (1 - temperature * Math.log(1 - rnd.nextDouble())) : Double.MAX_VALUE;
            double t = sim.optimisticIterationSeconds(next);
            if (t <= threshold && sim.lastWasUnderestimated()) {
                t = sim.iterationSeconds(next);
            }
            boolean accept = t <= threshold;
            if (accept) {
                cur[c] = prop;
                curA[c] = next[c];
                curT = t;
            }
            if (curT < bestT) {
                bestT = curT;
                best = cur.clone();
                bestA = curA.clone();
                sinceBest = 0;
            } else if (++sinceBest > restartAfter) {
                // restart from the best state, every other time shaken: two calls moved to random choices
                cur = best.clone();
                curA = bestA.clone();
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
        double elapsed = (System.nanoTime() - t0) / 1e9;
        return new SearchResult(Double.isFinite(bestT) ? bestA : null, bestT, steps, elapsed);
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

    private int propose(int c, int[] cur, Candidate[] curA, SplittableRandom rnd) {
        List<Candidate> all = space.candidates(c);
        int move = rnd.nextInt(6);
        switch (move) {
            case 0 -> {
                return rnd.nextInt(all.size());
            }
            case 1 -> {
                List<Integer> same = space.sameShape(c, cur[c]);
                return same.isEmpty() ? -1 : same.get(rnd.nextInt(same.size()));
            }
            case 2 -> {
                List<Integer> on = space.onMesh(c, curA[c].mesh());
                return on.isEmpty() ? -1 : on.get(rnd.nextInt(on.size()));
            }
            case 3 -> {
                int other = rnd.nextInt(curA.length);
                List<Integer> on = space.onMesh(c, curA[other].mesh());
                return on.isEmpty() ? -1 : on.get(rnd.nextInt(on.size()));
            }
            case 4 -> {
                // next to another call: a mesh of its size that does not overlap it (so both can run at once)
                int other = rnd.nextInt(curA.length);
                if (other == c) {
                    return -1;
                }
                List<org.sparkrlhf.planner.mesh.DeviceMesh> free =
                        space.disjointMeshes(curA[other].mesh().size(), curA[other].mesh());
                if (free.isEmpty()) {
                    return -1;
                }
                List<Integer> on = space.onMesh(c, free.get(rnd.nextInt(free.size())));
                return on.isEmpty() ? -1 : on.get(rnd.nextInt(on.size()));
            }
            default -> {
                int h = homeOf(c);
                if (h == c) {
                    return rnd.nextInt(all.size());
                }
                return space.find(c, curA[h].mesh(), curA[h].strategy(), rnd.nextBoolean());
            }
        }
    }

    private int homeOf(int c) {
        return home[c];
    }
}
