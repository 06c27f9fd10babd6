package org.sparkrlhf.planner.search;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The baseline's refusal names its reason: a batch too small for the data-parallel ranks is not "memory". */
class BaselinesWhyNotTest {
    private static PlanningProblem ppo(int sequences, String model) {
        ModelSpec a = ModelSpec.preset(model);
        ModelSpec c = a.withValueHead();
        return new PlanningProblem(Algorithms.ppo(4), Map.of("actor", a, "ref", a, "critic", c, "reward", c),
                ClusterSpec.h100(1, 8), new Workload(128, 128, sequences * 256L), CostConstants.calibrated(),
                ProfileTable.empty(), false);
    }

    @Test
    void aBatchTooSmallForTheRanksIsNamedAsSuch() {
        // 16 sequences in 4 train steps are 4 a step: not one for each of 8 data-parallel ranks
        PlanningProblem p = ppo(16, "llama2-7b");
        ParallelStrategy dp8 = ParallelStrategy.of(8, 1, 1, 1);
        assertNull(Baselines.sameEverywhere(p, new Simulator(p), dp8));
        assertEquals("call actor_train: 8 replicas x 1 micro-batches need more sequences than the 16 of a batch "
                + "split into 4 steps", Baselines.whyNot(p, dp8));
    }

    @Test
    void modelsTooLargeForTheDevicesAreMemory() {
        PlanningProblem p = ppo(1024, "llama2-70b");
        ParallelStrategy dp8 = ParallelStrategy.of(8, 1, 1, 1);
        assertNull(Baselines.sameEverywhere(p, new Simulator(p), dp8));
        assertEquals("the models do not fit in the devices' memory", Baselines.whyNot(p, dp8));
    }
}
