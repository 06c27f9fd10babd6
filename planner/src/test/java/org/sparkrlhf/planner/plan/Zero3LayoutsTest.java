package org.sparkrlhf.planner.plan;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.planner.Planner;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.search.CandidateSpace;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A problem for a runtime without ZeRO-3 (the project's engine keeps whole data-parallel replicas):
 * no candidate, baseline or searched plan has a ZeRO-3 layout, and a given plan with one is refused
 * naming its call; a problem that allows ZeRO-3 keeps offering it.
 */
class Zero3LayoutsTest {
    private static PlanningProblem ppo(boolean zero3) {
        ModelSpec a = ModelSpec.preset("llama2-7b");
        ModelSpec c = a.withValueHead();
        return new PlanningProblem(Algorithms.ppo(4), Map.of("actor", a, "ref", a, "critic", c, "reward", c),
                ClusterSpec.h100(1, 8), new Workload(128, 128, 1 << 17), CostConstants.calibrated(),
                ProfileTable.empty(), zero3);
    }

    @Test
    void theCandidatesHaveZero3OnlyWhereTheProblemAllowsIt() {
        PlanningProblem without = ppo(false);
        PlanningProblem with = ppo(true);
        assertFalse(without.allowsZero3());
        assertTrue(with.allowsZero3());
        CandidateSpace none = new CandidateSpace(without);
        CandidateSpace all = new CandidateSpace(with);
        for (int c = 0; c < none.calls(); c++) {
            long zero3 = all.candidates(c).stream().filter(k -> k.strategy().zero3()).count();
            assertTrue(zero3 > 0, "call " + c + " is offered ZeRO-3 where the problem allows it");
            assertTrue(none.candidates(c).stream().noneMatch(k -> k.strategy().zero3()), "call " + c);
            // exactly the ZeRO-3 candidates are gone
            assertEquals(all.candidates(c).size() - zero3, none.candidates(c).size(), "call " + c);
        }
        // the colocated baseline: ZeRO-3 over all devices, or plain replicas over all devices
        Candidate[] colocated = Baselines.colocated(with, new Simulator(with));
        assertNotNull(colocated);
        for (Candidate k : colocated) {
            assertTrue(k.strategy().zero3());
        }
        assertEquals(new ParallelStrategy(8, 1, 1, 1, false), Baselines.colocatedLayout(without.cluster(), false));
        Candidate[] replicas = Baselines.colocated(without, new Simulator(without));
        if (replicas != null) {
            for (Candidate k : replicas) {
                assertFalse(k.strategy().zero3());
                assertEquals(8, k.strategy().dp());
            }
        }
        assertEquals(null, Baselines.sameEverywhere(without, new Simulator(without),
                Baselines.colocatedLayout(without.cluster(), true)));
    }

    @Test
    @Timeout(60)
    void theSearchChoosesNoZero3Layout() {
        Planner.Outcome o = Planner.plan(ppo(false), 3, 30, 2000);
        assertNotNull(o.plan());
        for (Candidate c : o.plan()) {
            assertFalse(c.strategy().zero3(), c.strategy().label());
        }
    }

    @Test
    void aGivenPlanWithZero3IsRefusedNamingTheCall() {
        DeviceMesh all = new DeviceMesh(0, 8);
        ParallelStrategy replicas = ParallelStrategy.of(8, 1, 1, 1);
        ExecutionPlan plan = new ExecutionPlan("ppo", List.of(
                new CallPlacement("actor_gen", all, ParallelStrategy.of(1, 8, 1, 1)),
                new CallPlacement("reward_inf", all, replicas),
                new CallPlacement("ref_inf", all, replicas),
                new CallPlacement("critic_inf", all, replicas),
                new CallPlacement("actor_train", all, ParallelStrategy.of(1, 8, 1, 4)),
                new CallPlacement("critic_train", all, new ParallelStrategy(8, 1, 1, 4, true))));
        var e = assertThrows(IllegalArgumentException.class, () -> PlanEvaluation.candidates(ppo(false), plan));
        assertTrue(e.getMessage().contains("critic_train") && e.getMessage().contains("ZeRO-3")
                && e.getMessage().contains("dp8(zero3)"), e.getMessage());
        assertEquals(6, PlanEvaluation.candidates(ppo(true), plan).length);
    }
}
