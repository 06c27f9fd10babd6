package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SearchTest {
    private static PlanningProblem ppo(String actor, String critic, int nodes, int gen) {
        ModelSpec a = ModelSpec.preset(actor);
        ModelSpec c = ModelSpec.preset(critic).withValueHead();
        return new PlanningProblem(Algorithms.ppo(4), Map.of("actor", a, "ref", a, "critic", c, "reward", c),
                ClusterSpec.h100(nodes, 8), new Workload(128, gen, 1 << 17), CostConstants.calibrated(),
                ProfileTable.empty());
    }

    @Test
    @Timeout(60)
    void searchedPlanIsNeverSlowerThanTheBaselinesAndIsReproducible() {
        PlanningProblem p = ppo("llama2-7b", "llama2-7b", 1, 128);
        Planner.Outcome a = Planner.plan(p, 3, 60, 4000);
        Planner.Outcome b = Planner.plan(ppo("llama2-7b", "llama2-7b", 1, 128), 3, 60, 4000);
        assertNotNull(a.plan());
        assertTrue(a.result().feasible());
        assertTrue(a.result().iterationSeconds() <= a.symmetricSeconds(), "vs symmetric");
        assertTrue(a.result().iterationSeconds() <= a.colocatedSeconds(), "vs colocated");
        assertTrue(a.result().iterationSeconds() < 0.95 * a.symmetricSeconds(), "the search finds something better");
        assertEquals(a.result().iterationSeconds(), b.result().iterationSeconds(), 0);
        for (int c = 0; c < a.plan().length; c++) {
            assertEquals(a.plan()[c].mesh(), b.plan()[c].mesh());
            assertEquals(a.plan()[c].strategy(), b.plan()[c].strategy());
            assertTrue(a.result().callMemoryBytes()[c] <= p.costModel().memoryLimit());
        }
    }

    @Test
    void baselinesFollowTheirDefinitionAndRespectMemory() {
        PlanningProblem p = ppo("llama2-13b", "llama2-7b", 2, 128);
        Simulator sim = new Simulator(p);
        Candidate[] sym = Baselines.symmetric(p, sim);
        assertNotNull(sym);
        for (Candidate c : sym) {
            assertEquals(new DeviceMesh(0, 16), c.mesh());
            assertEquals(1, c.strategy().dp());
            assertEquals(8, c.strategy().tp());
            assertEquals(2, c.strategy().pp());
        }
        Candidate[] col = Baselines.colocated(p, sim);
        assertNotNull(col);
        for (Candidate c : col) {
            assertTrue(c.strategy().zero3());
            assertEquals(16, c.strategy().dp());
        }
        // 70B actor and reference with TP 8 on one node: the training state alone exceeds 80 GB a device
        PlanningProblem big = ppo("llama2-70b", "llama2-7b", 1, 128);
        assertNull(Baselines.symmetric(big, new Simulator(big)));
        // 128 sequences in 4 mini-batches cannot be split over 64 ZeRO-3 replicas
        PlanningProblem wide = ppo("llama2-70b", "llama2-7b", 8, 896);
        assertNull(Baselines.colocated(wide, new Simulator(wide)));
    }

    @Test
    @Timeout(60)
    void smallCpuClusterGetsAPlan() {
        ModelSpec tiny = ModelSpec.llama("tiny-llama", 4, 256, 688, 8, 4, 1000);
        PlanningProblem p = new PlanningProblem(Algorithms.grpo(2), Map.of("actor", tiny, "ref", tiny,
                "reward", tiny.withValueHead()), ClusterSpec.cpu(2, 2, 2 * GpuSpec.GIB), new Workload(32, 32, 4096),
                CostConstants.calibrated(), ProfileTable.empty());
        Planner.Outcome o = Planner.plan(p, 1, 30, 2000);
        assertNotNull(o.plan());
        assertTrue(o.result().feasible());
        for (Candidate c : o.plan()) {
            assertTrue(c.mesh().end() <= 4);
        }
        assertTrue(o.result().iterationSeconds() <= o.symmetricSeconds());
    }
}
