package org.sparkrlhf.planner.search;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SearchMovesTest {
    private static PlanningProblem ppo(String actor, String critic, int nodes, int gen) {
        ModelSpec a = ModelSpec.preset(actor);
        ModelSpec c = ModelSpec.preset(critic).withValueHead();
        return new PlanningProblem(Algorithms.ppo(4), Map.of("actor", a, "ref", a, "critic", c, "reward", c),
                ClusterSpec.h100(nodes, 8), new Workload(128, gen, 1 << 17), CostConstants.calibrated(),
                ProfileTable.empty());
    }

    /** Every proposal of every move is a valid choice of the space, and the joint moves keep their invariants. */
    @Test
    @Timeout(120)
    void proposalsAreValidCandidatesAndJointMovesKeepTheirInvariants() {
        PlanningProblem p = ppo("llama2-13b", "llama2-7b", 2, 128);
        CandidateSpace space = new CandidateSpace(p);
        PlanSearch search = new PlanSearch(space, new Simulator(p));
        var g = p.graph();
        int n = space.calls();
        SplittableRandom rnd = new SplittableRandom(7);
        int changedSeveral = 0;
        for (int trial = 0; trial < 20000; trial++) {
            int[] cur = new int[n];
            Candidate[] curA = new Candidate[n];
            for (int c = 0; c < n; c++) {
                cur[c] = rnd.nextInt(space.candidates(c).size());
                curA[c] = space.candidate(c, cur[c]);
            }
            int[] next = cur.clone();
            int c = rnd.nextInt(n);
            if (!search.propose(c, cur, curA, next, rnd)) {
                assertTrue(Arrays.equals(cur, next) || next[c] >= 0, "a refused move leaves no invalid index");
                continue;
            }
            int changed = 0;
            for (int d = 0; d < n; d++) {
                assertTrue(next[d] >= 0 && next[d] < space.candidates(d).size(), "index in the space");
                Candidate x = space.candidate(d, next[d]);
                ModelCall call = g.call(d);
                assertNull(x.mesh().invalidReason(p.cluster()));
                assertNull(x.strategy().invalidReason(p.model(call.role()), x.mesh(), p.cluster()));
                if (next[d] != cur[d]) {
                    changed++;
                }
            }
            changedSeveral += changed > 1 ? 1 : 0;
        }
        assertTrue(changedSeveral > 100, "joint moves change several calls at once: " + changedSeveral);
    }

    @Test
    void movedKeepsLayoutAndMicroBatchesOnAnotherMesh() {
        PlanningProblem p = ppo("llama2-7b", "llama2-7b", 2, 128);
        CandidateSpace space = new CandidateSpace(p);
        int train = 4;
        DeviceMesh left = new DeviceMesh(0, 8);
        DeviceMesh right = new DeviceMesh(8, 8);
        int tested = 0;
        for (int i : space.onMesh(train, left)) {
            Candidate a = space.candidate(train, i);
            int j = space.moved(train, i, right);
            assertTrue(j >= 0, "every layout on one node exists on the other");
            Candidate b = space.candidate(train, j);
            assertEquals(right, b.mesh());
            assertEquals(a.strategy(), b.strategy());
            assertEquals(a.estimate(), b.estimate());
            assertEquals(-1, space.moved(train, i, new DeviceMesh(0, 4)), "no move to a mesh of another size");
            tested++;
        }
        assertTrue(tested > 5);
    }

    /** Variants of a layout: fastest first, each later one needs strictly less memory (none is dominated). */
    @Test
    void variantsFormATimeMemoryFront() {
        PlanningProblem p = ppo("llama2-13b", "llama2-7b", 2, 128);
        DeviceMesh all = new DeviceMesh(0, 16);
        int fronts = 0;
        for (int c = 0; c < p.graph().size(); c++) {
            ModelCall call = p.graph().call(c);
            for (var layout : CandidateSpace.layoutsFor(p.model(call.role()), all, p.cluster())) {
                List<CallEstimate> v = p.costModel().estimate(call, p.model(call.role()), p.workload(),
                        p.graph().isTrainable(call.role()), all, layout, p.isHome(c));
                for (int k = 1; k < v.size(); k++) {
                    assertTrue(v.get(k).seconds() >= v.get(k - 1).seconds());
                    assertTrue(v.get(k).transientBytes() < v.get(k - 1).transientBytes());
                }
                fronts += v.size() > 2 ? 1 : 0;
            }
        }
        assertTrue(fronts > 0, "some layout has a trade-off between the fastest and the smallest variant");
    }

    /** Step-bounded searches from the same seed give the same plan; the heuristic starts alone beat the baselines. */
    @Test
    @Timeout(120)
    void searchFromASeedIsDeterministicAndStartsNoWorseThanTheBaselines() {
        PlanningProblem p1 = ppo("llama2-7b", "llama2-7b", 2, 128);
        PlanningProblem p2 = ppo("llama2-7b", "llama2-7b", 2, 128);
        Simulator s1 = new Simulator(p1);
        Simulator s2 = new Simulator(p2);
        List<Candidate[]> seeds1 = Arrays.asList(Baselines.symmetric(p1, s1), Baselines.colocated(p1, s1));
        List<Candidate[]> seeds2 = Arrays.asList(Baselines.symmetric(p2, s2), Baselines.colocated(p2, s2));
        SearchResult a = new PlanSearch(new CandidateSpace(p1), s1).search(11, 300, 6000, seeds1);
        SearchResult b = new PlanSearch(new CandidateSpace(p2), s2).search(11, 300, 6000, seeds2);
        assertNotNull(a.best());
        assertEquals(6000, a.steps());
        assertEquals(a.iterationSeconds(), b.iterationSeconds(), 0);
        for (int c = 0; c < a.best().length; c++) {
            assertEquals(a.best()[c].mesh(), b.best()[c].mesh());
            assertEquals(a.best()[c].strategy(), b.best()[c].strategy());
        }
        assertEquals(a.iterationSeconds(), s1.iterationSeconds(a.best()), 1e-9, "the reported time is the plan's");

        SearchResult none = new PlanSearch(new CandidateSpace(p1), s1).search(11, 300, 0, seeds1);
        double sym = s1.iterationSeconds(seeds1.get(0));
        double col = s1.iterationSeconds(seeds1.get(1));
        assertTrue(none.iterationSeconds() <= Math.min(sym, col));
        assertFalse(Double.isInfinite(none.iterationSeconds()));
        assertTrue(a.iterationSeconds() <= none.iterationSeconds());
    }
}
