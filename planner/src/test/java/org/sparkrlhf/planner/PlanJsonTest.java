package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.CallPlacement;
import org.sparkrlhf.planner.plan.ExecutionPlan;
import org.sparkrlhf.planner.plan.PlanJson;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlanJsonTest {
    private final ClusterSpec cluster = ClusterSpec.h100(2, 8);
    private final DataflowGraph ppo = Algorithms.ppo(4);

    private ExecutionPlan plan() {
        return new ExecutionPlan("ppo", List.of(
                new CallPlacement("actor_gen", new DeviceMesh(0, 8), ParallelStrategy.of(2, 4, 1, 1)),
                new CallPlacement("reward_inf", new DeviceMesh(8, 4), ParallelStrategy.of(4, 1, 1, 2)),
                new CallPlacement("ref_inf", new DeviceMesh(12, 4), ParallelStrategy.of(1, 2, 2, 4)),
                new CallPlacement("critic_inf", new DeviceMesh(0, 16), new ParallelStrategy(16, 1, 1, 1, true)),
                new CallPlacement("actor_train", new DeviceMesh(0, 16), ParallelStrategy.of(1, 8, 2, 8)),
                new CallPlacement("critic_train", new DeviceMesh(6, 2), ParallelStrategy.of(1, 2, 1, 1))));
    }

    @Test
    void roundTrips() {
        ExecutionPlan p = plan();
        String json = PlanJson.write(p, cluster);
        assertEquals(p, PlanJson.read(json, ppo, cluster, "mem"));
        assertTrue(json.contains("\"gpus\" : [ 6, 7 ]"), json);
    }

    @Test
    void errorsNameTheCallAndField() {
        String ok = PlanJson.write(plan(), cluster);
        var e = assertThrows(IllegalArgumentException.class,
                () -> PlanJson.read(ok.replace("\"critic_train\"", "\"critic_step\""), ppo, cluster, "plan.json"));
        assertTrue(e.getMessage().contains("plan.json") && e.getMessage().contains("critic_step"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> PlanJson.read(ok.replace("[ 6, 7 ]", "[ 6, 8 ]"), ppo, cluster, "plan.json"));
        assertTrue(e.getMessage().contains("critic_train") && e.getMessage().contains("gpus"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> PlanJson.read(ok.replace("[ 6, 7 ]", "[ 5, 6 ]"), ppo, cluster, "plan.json"));
        assertTrue(e.getMessage().contains("critic_train") && e.getMessage().contains("multiple of 2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PlanJson.read("{\"calls\": []}", ppo, cluster, "p"));
        assertTrue(e.getMessage().contains("actor_gen") && e.getMessage().contains("not placed"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PlanJson.read("{\"calls\": [", ppo, cluster, "p"));
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    }
}
