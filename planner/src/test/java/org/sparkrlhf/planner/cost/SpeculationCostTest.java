package org.sparkrlhf.planner.cost;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Speculation;
import org.sparkrlhf.planner.spec.Workload;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The generate call's cost with S3D speculative decoding, against the speedup model worked by hand. */
class SpeculationCostTest {
    private static final ModelSpec L7 = ModelSpec.preset("llama2-7b");

    @Test
    void speedupFormulas() {
        // (1 - 0.5^4) / (1 - 0.5) = 1.875; alpha 1: every draft accepted; alpha 0: the verifier's token only
        assertEquals(1.875, Speculation.expectedTokensPerStep(0.5, 3), 1e-12);
        assertEquals(4, Speculation.expectedTokensPerStep(1, 3), 0);
        assertEquals(1, Speculation.expectedTokensPerStep(0, 3), 0);
        assertEquals(0.75, Speculation.draftCostFraction(8, 32), 0);
        assertEquals(1.875, new Speculation(8, 16, 3, Speculation.DEFAULT_ACCEPTANCE).expectedTokensPerStep(), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> new Speculation(0, 1, 3, 1.5));
    }

    @Test
    void aSpeculativeStepDraftsThroughTheKeptLayersVerifiesKPlusOneRowsAndGainsETokens() {
        ClusterSpec cluster = ClusterSpec.h100(1, 8);
        CostConstants k = CostConstants.calibrated();
        CallCostModel m = new CallCostModel(cluster, k, ProfileTable.empty());
        ComputeModel compute = new ComputeModel(cluster.gpu(), k, ProfileTable.empty());
        Speculation sp = new Speculation(8, 16, 3, 0.5);
        Workload plain = new Workload(128, 256, 1 << 17);
        Workload spec = new Workload(128, 256, 1 << 17, sp);
        ParallelStrategy s = ParallelStrategy.of(8, 1, 1, 1);
        DeviceMesh mesh = new DeviceMesh(0, 8);
        double b = plain.sequences() / 8.0;
        double t0 = m.generateSeconds(L7, plain, s, b, false, mesh, CallCostModel.GatherMode.NONE);
        double t1 = m.generateSeconds(L7, spec, s, b, false, mesh, CallCostModel.GatherMode.NONE);
        // the prefill samples the first new token: 16 chunks of the 255 others; the prefill and the call's overhead
        // are the same
        double delta = 0;
        for (int c = 0; c < 16; c++) {
            int from = c * 255 / 16;
            int to = (c + 1) * 255 / 16;
            double ctx = 128 + 1 + (from + to) / 2.0;
            double plainStep = 32 * compute.layerDecode(L7, b, ctx, 1) + compute.headForward(L7, b, 1) + k.decodeStepOverhead();
            double rows = 4 * b;
            double verify = 32 * compute.layerDecode(L7, rows, ctx, 1) + compute.headForward(L7, rows, 1);
            double draft = 24 * compute.layerDecode(L7, rows, ctx, 1) + compute.headForward(L7, rows, 1);
            double specStep = (verify + draft + 2 * k.decodeStepOverhead()) / 1.875;
            delta += (to - from) * (specStep - plainStep);
        }
        assertEquals(t0 + delta, t1, 1e-9 * t0);

        // a better draft costs less; only data-parallel layouts decode speculatively
        double better = m.generateSeconds(L7, new Workload(128, 256, 1 << 17, new Speculation(8, 16, 3, 0.9)), s, b,
                false, mesh, CallCostModel.GatherMode.NONE);
        assertTrue(better < t1);
        DataflowGraph g = Algorithms.of("ppo", 1);
        var gen = g.call(g.indexOf("actor_gen"));
        assertTrue(!m.estimate(gen, L7, spec, true, mesh, s, false).isEmpty());
        assertTrue(m.estimate(gen, L7, spec, true, mesh, ParallelStrategy.of(4, 2, 1, 1), false).isEmpty());
    }
}
