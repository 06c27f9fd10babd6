package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.sim.TimelineEvent;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The list scheduler on hand-made durations, where the expected timeline can be worked out by hand. */
class SimulatorTest {
    private static final ModelSpec TINY = ModelSpec.llama("tiny", 2, 64, 128, 4, 4, 100);
    private static final ParallelStrategy DP4 = ParallelStrategy.of(4, 1, 1, 1);
    private static final ParallelStrategy DP2 = ParallelStrategy.of(2, 1, 1, 1);

    /** gen (role x) -> score (role y) -> train (role x); gen and train share their layout. */
    private static PlanningProblem problem() {
        DataflowGraph g = new DataflowGraph("t", List.of(
                ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids")),
                ModelCall.inference("score", "y", List.of("packed_input_ids"), List.of("rewards")),
                ModelCall.train("train", "x", List.of("packed_input_ids", "rewards"), 1)));
        return new PlanningProblem(g, Map.of("x", TINY, "y", TINY), ClusterSpec.h100(1, 4), new Workload(8, 8, 64),
                CostConstants.calibrated(), ProfileTable.empty());
    }

    private static Candidate cand(int call, int first, int size, ParallelStrategy s, double seconds, double bytes) {
        return new Candidate(call, new DeviceMesh(first, size), s, new CallEstimate(seconds, 1, false, bytes, 0, 0), -1);
    }

    @Test
    void sharedDevicesSerialiseAndIterationsChain() {
        PlanningProblem p = problem();
        Candidate[] a = {cand(0, 0, 4, DP4, 1, 0), cand(1, 0, 4, DP4, 2, 0), cand(2, 0, 4, DP4, 3, 0)};
        SimResult r = new Simulator(p).simulate(a);
        assertTrue(r.feasible());
        // every iteration: gen 1 s, score 2 s, train 3 s, one after the other; the next gen waits for train
        assertEquals(6.0, r.iterationSeconds(), 1e-12);
        List<TimelineEvent> t = r.timeline();
        assertEquals(3 * Simulator.ITERATIONS, t.size());
        assertEquals(0.0, t.get(0).start(), 1e-12);
        assertEquals(1.0, t.get(1).start(), 1e-12);
        assertEquals(3.0, t.get(2).start(), 1e-12);
        assertEquals(6.0, t.get(3).start(), 1e-12);
        assertEquals(0.0, r.reallocSeconds()[1], 0);
    }

    @Test
    void disjointMeshesOverlapAcrossIterations() {
        PlanningProblem p = problem();
        // score on devices 2-3 and gen/train on 0-1: score(i) overlaps nothing of its own iteration, but the
        // data it reads moves between meshes; train waits for it
        Candidate[] a = {cand(0, 0, 2, DP2, 1, 0), cand(1, 2, 2, DP2, 2, 0), cand(2, 0, 2, DP2, 3, 0)};
        SimResult r = new Simulator(p).simulate(a);
        List<TimelineEvent> t = r.timeline();
        double there = t.get(1).start() - t.get(0).end();
        double back = t.get(2).start() - t.get(1).end();
        assertTrue(there > 0 && there < 1e-3 && back > 0 && back < there, "data transfers " + there + ", " + back);
        assertEquals(6.0 + there + back, r.iterationSeconds(), 1e-9);

        // a role y call that takes long: gen of the next iteration does not wait for it
        Candidate[] b = {cand(0, 0, 2, DP2, 1, 0), cand(1, 2, 2, DP2, 2, 0), cand(2, 0, 2, DP2, 0.5, 0)};
        SimResult rb = new Simulator(p).simulate(b);
        TimelineEvent gen2 = rb.timeline().get(3);
        TimelineEvent train1 = rb.timeline().get(2);
        assertEquals("gen", gen2.label());
        assertEquals(train1.end(), gen2.start(), 1e-12);
    }

    /**
     * gen on tp 4, train (x's home) on dp 4. From the second iteration on, gen takes x from train's layout
     * by a reallocation before it. In the first nothing holds x yet: gen loads it (not timed), and train
     * takes it from gen's layout, as the runtime does.
     */
    @Test
    void aCallOffItsHomeLayoutIsReallocatedFirst() {
        PlanningProblem p = problem();
        Candidate[] a = {cand(0, 0, 4, ParallelStrategy.of(1, 4, 1, 1), 1, 0), cand(1, 0, 4, DP4, 2, 0),
                cand(2, 0, 4, DP4, 3, 0)};
        SimResult r = new Simulator(p).simulate(a);
        assertTrue(r.reallocSeconds()[0] > 0);
        assertEquals(0.0, r.reallocSeconds()[2], 0);
        List<String> first = r.timeline().stream().filter(e -> e.iteration() == 0).map(TimelineEvent::label).toList();
        assertEquals(List.of("gen", "score", "realloc x -> train", "train"), first);
        assertEquals(0.0, r.timeline().get(0).start(), 0);
        List<TimelineEvent> second = r.timeline().stream().filter(e -> e.iteration() == 1).toList();
        assertEquals("realloc x -> gen", second.get(0).label());
        assertEquals(second.get(0).end(), second.get(1).start(), 1e-12);
        assertEquals(6.0 + r.reallocSeconds()[0], r.iterationSeconds(), 1e-9);
    }

    @Test
    void aPlanThatDoesNotFitIsInfeasibleAndSaysWhere() {
        PlanningProblem p = problem();
        double tooMuch = p.costModel().memoryLimit() + 1;
        Candidate[] a = {cand(0, 0, 4, DP4, 1, 0), cand(1, 0, 2, DP2, 2, tooMuch), cand(2, 0, 4, DP4, 3, 0)};
        Simulator sim = new Simulator(p);
        assertEquals(Double.POSITIVE_INFINITY, sim.iterationSeconds(a));
        SimResult r = sim.simulate(a);
        assertFalse(r.feasible());
        assertTrue(r.infeasibleReason().contains("score") && r.infeasibleReason().contains("0-1"), r.infeasibleReason());
    }

    /**
     * Two nodes of two devices. x trains on devices 0-3 (tp 2 inside a node, dp 2 across the nodes) and
     * generates on node 0 (dp 2): devices 0 and 1 hold both tensor shards, sources are taken on the
     * receiver's node first, so the reallocation needs only node 0. As the runtime does, the next
     * iteration starts when this one has ended (y's long training on node 1 included).
     */
    @Test
    void aReallocationHoldsOnlyTheDevicesThatSendOrReceive() {
        DataflowGraph g = new DataflowGraph("t", List.of(
                ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids")),
                ModelCall.inference("score", "y", List.of("packed_input_ids"), List.of("rewards")),
                ModelCall.train("train", "x", List.of("packed_input_ids", "rewards"), 1),
                ModelCall.train("train_y", "y", List.of("packed_input_ids", "rewards"), 1)));
        PlanningProblem p = new PlanningProblem(g, Map.of("x", TINY, "y", TINY), ClusterSpec.h100(2, 2),
                new Workload(8, 8, 64), CostConstants.calibrated(), ProfileTable.empty());
        ParallelStrategy tp2dp2 = ParallelStrategy.of(2, 2, 1, 1);
        PlanningProblem.ReallocCost rc = p.reallocCost("x", new DeviceMesh(0, 4), tp2dp2, new DeviceMesh(0, 2), DP2);
        // device 0 takes tensor shard 1 from device 1 (its node), device 1 shard 0 from device 0
        assertEquals(List.of(0, 1), java.util.Arrays.stream(rc.senders()).boxed().toList());
        assertTrue(rc.seconds() > 0);

        Candidate[] a = {cand(0, 0, 2, DP2, 1, 0), cand(1, 2, 2, DP2, 2, 0), cand(2, 0, 4, tp2dp2, 3, 0),
                cand(3, 2, 2, DP2, 5, 0)};
        SimResult r = new Simulator(p).simulate(a);
        TimelineEvent trainY0 = null;
        TimelineEvent realloc1 = null;
        double realloc = 0;
        for (TimelineEvent e : r.timeline()) {
            if (e.iteration() == 0 && e.label().equals("train_y")) {
                trainY0 = e;
            }
            if (e.iteration() == 1 && e.reallocation()) {
                realloc1 = e;
                realloc = e.end() - e.start();
            }
        }
        assertEquals(trainY0.end(), realloc1.start(), 1e-12, "iteration 1 starts when iteration 0 has ended");
        assertFalse(realloc1.uses(2) || realloc1.uses(3));
        // per iteration, one after the other: reallocation, gen 1 s, score 2 s, train 3 s (on 0-3), train_y 5 s
        // (plus microseconds moving the batch between meshes)
        assertEquals(realloc + 11.0, r.iterationSeconds(), 1e-3);
    }
}
