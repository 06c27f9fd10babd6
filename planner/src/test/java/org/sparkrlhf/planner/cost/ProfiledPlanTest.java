package org.sparkrlhf.planner.cost;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A plan on one CPU slot priced from a synthetic profile table whose per-op times are known. */
class ProfiledPlanTest {
    private static final ModelSpec M = ModelSpec.llama("m", 2, 64, 128, 4, 4, 100);
    private static final double FWD = 0.010, BWD = 0.025, DECODE = 0.002, HEAD_FWD = 0.004, HEAD_BWD = 0.006;
    private static final double CALL = 0.050, STEP = 0.003;

    /** One row per op at a token count above every query, so that each lookup is that row's time. */
    private static ProfileTable table() {
        List<String> lines = List.of("model,gpu,op,tp,tokens,context,seconds",
                "m,cpu,layer_fwd,1,100000,8," + FWD,
                "m,cpu,layer_bwd,1,100000,8," + BWD,
                "m,cpu,layer_decode,1,100000,6," + DECODE,
                "m,cpu,head_fwd,1,100000,0," + HEAD_FWD,
                "m,cpu,head_bwd,1,100000,0," + HEAD_BWD);
        return ProfileTable.empty().read("synthetic.csv", lines);
    }

    @Test
    void iterationTimeIsTheHandSumOfTheProfiledOps() {
        DataflowGraph g = new DataflowGraph("t", List.of(
                ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids")),
                ModelCall.inference("score", "y", List.of("packed_input_ids"), List.of("rewards")),
                ModelCall.train("train", "x", List.of("packed_input_ids", "rewards"), 1)));
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(new RuntimeCosts(CALL, STEP));
        ClusterSpec cluster = ClusterSpec.cpu(1, 1, 8 * GpuSpec.GIB);
        // 8 sequences of 4 prompt + 4 new tokens
        PlanningProblem p = new PlanningProblem(g, Map.of("x", M, "y", M), cluster, new Workload(4, 4, 64), k, table());
        ParallelStrategy one = ParallelStrategy.of(1, 1, 1, 1);
        DeviceMesh mesh = new DeviceMesh(0, 1);
        Candidate[] plan = new Candidate[3];
        for (int c = 0; c < 3; c++) {
            ModelCall call = g.calls().get(c);
            CallEstimate e = p.costModel().estimateFixed(call, p.modelOf(c), p.workload(), g.isTrainable(call.role()),
                    mesh, one, true);
            plan[c] = new Candidate(c, mesh, one, e, -1);
        }
        // generate: a prefill (2 layers + head), then 4 steps of 2 layer decodes + head + the step's overhead
        double gen = (2 * FWD + HEAD_FWD) + 4 * (2 * DECODE + HEAD_FWD + STEP) + CALL;
        // inference: one forward of 2 layers and the head
        double score = 2 * FWD + HEAD_FWD + CALL;
        // train: forward and backward of 2 layers and the head, then AdamW's memory pass over the parameters
        double adam = 30.0 * M.totalParams() / (cluster.gpu().memoryBandwidth() * k.memoryEfficiency());
        double train = 2 * FWD + HEAD_FWD + 2 * BWD + HEAD_BWD + adam + CALL;
        assertEquals(gen, plan[0].estimate().seconds(), 1e-12);
        assertEquals(score, plan[1].estimate().seconds(), 1e-12);
        assertEquals(train, plan[2].estimate().seconds(), 1e-12);

        SimResult r = new Simulator(p).simulate(plan);
        assertTrue(r.feasible());
        // one slot: the calls run one after the other, nothing moves
        assertEquals(gen + score + train, r.iterationSeconds(), 1e-9);
    }

    @Test
    void runtimeCostsRoundTrip() {
        RuntimeCosts c = new RuntimeCosts(0.0123, 4.5e-4);
        RuntimeCosts back = RuntimeCosts.parse("costs", List.of(c.format().split("\n")));
        assertEquals(c.callOverhead(), back.callOverhead(), 1e-9);
        assertEquals(c.decodeStepOverhead(), back.decodeStepOverhead(), 1e-12);
    }
}
