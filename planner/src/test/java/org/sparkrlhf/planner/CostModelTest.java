package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.cost.CallCostModel;
import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.FlopCounter;
import org.sparkrlhf.planner.cost.MemoryModel;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.cost.RuntimeCosts;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CostModelTest {
    private static final ModelSpec L7 = ModelSpec.preset("llama2-7b");

    /** ReaL's FLOP formulas re-implemented independently (Python, from realhf/base/monitor.py) for these values. */
    @Test
    void flopCountsFollowRealsConvention() {
        double seqs = (1 << 17) / 1024.0;
        assertEquals(22_006_205_538_893_824.0, FlopCounter.ppoIteration(L7, L7, L7, L7, seqs, 128, 896), 1e4);
        ModelSpec l70 = ModelSpec.preset("llama2-70b");
        assertEquals(134_464_860_418_211_840.0, FlopCounter.ppoIteration(l70, L7, l70, L7, 512, 128, 128), 1e5);
        assertEquals(FlopCounter.forward(L7, 4, 100), FlopCounter.generate(L7, 4, 100, 0), 0);
    }

    @Test
    void memoryArithmetic() {
        ParallelStrategy s = ParallelStrategy.of(2, 4, 1, 1);
        double p = L7.totalParams() / 4.0;
        assertEquals(2 * p, MemoryModel.weightBytes(L7, s), 1);
        assertEquals(6 * p + 12 * p / 2, MemoryModel.trainStateBytes(L7, s), 1);
        ParallelStrategy z = new ParallelStrategy(8, 1, 1, 1, true);
        assertEquals(18.0 * Math.ceil(L7.totalParams() / 8.0), MemoryModel.trainStateBytes(L7, z), 1);
        // the first of two stages holds 16 layers and the embedding, the last 16 layers, the norm and the head
        ParallelStrategy pp2 = ParallelStrategy.of(1, 1, 2, 1);
        assertEquals(16 * L7.layerParams() + L7.embeddingParams(), MemoryModel.stageParams(L7, 2, 0), 0);
        assertEquals(16 * L7.layerParams() + L7.hidden() + L7.headParams(), MemoryModel.stageParams(L7, 2, 1), 0);
        assertEquals(2.0 * MemoryModel.stageParams(L7, 2, 1), MemoryModel.weightBytes(L7, pp2), 1);
        // KV cache: 10 sequences of 1000 tokens, k and v, 4096 wide, bf16, 16 layers of a stage, tp 2; an int32 key mask
        assertEquals(10 * 1000 * (2.0 * 4096 * 2 * 16 / 2 + 4),
                MemoryModel.kvCacheBytes(L7, ParallelStrategy.of(1, 2, 2, 1), 10, 1000), 1);
    }

    @Test
    void aMeasuredOptimizerStepPricesEachStepByTheParametersARankHolds() {
        ClusterSpec cluster = ClusterSpec.h100(1, 8);
        RuntimeCosts.Link link = new RuntimeCosts.Link(1e-4, 1e9);
        CostConstants roofline = CostConstants.calibrated().withRuntimeCosts(new RuntimeCosts(0.01, 0, 0, 0.01, Double.NaN,
                Double.NaN, link, RuntimeCosts.Link.NOT_MEASURED, Double.NaN, 0, 0));
        double rate = 2e-9;
        CostConstants measured = CostConstants.calibrated().withRuntimeCosts(new RuntimeCosts(0.01, 0, 0, 0.01, Double.NaN,
                Double.NaN, link, RuntimeCosts.Link.NOT_MEASURED, rate, 0, 0));
        DataflowGraph g = Algorithms.ppo(4);
        var train = g.call(g.indexOf("actor_train")).withEpochs(2);
        Workload w = new Workload(128, 384, 1 << 17);
        ParallelStrategy s = ParallelStrategy.of(2, 4, 1, 1);
        DeviceMesh mesh = new DeviceMesh(0, 8);
        double a = new CallCostModel(cluster, roofline, ProfileTable.empty()).estimateFixed(train, L7, w, true, mesh, s, true)
                .seconds();
        double b = new CallCostModel(cluster, measured, ProfileTable.empty()).estimateFixed(train, L7, w, true, mesh, s, true)
                .seconds();
        double pDev = MemoryModel.paramsPerDevice(L7, s);
        // without the measurement: a pass over the distributed optimizer's share of the state (30 bytes a parameter)
        double pass = 30.0 * pDev / s.dp() / (cluster.gpu().memoryBandwidth() * roofline.memoryEfficiency());
        assertEquals(2 * 4 * (rate * pDev - pass), b - a, 1e-9 * Math.abs(b));
    }

    @Test
    void estimatesRespectPhysicalLimits() {
        ClusterSpec cluster = ClusterSpec.h100(2, 8);
        CallCostModel m = new CallCostModel(cluster, CostConstants.calibrated(), ProfileTable.empty());
        DataflowGraph g = Algorithms.ppo(4);
        Workload w = new Workload(128, 384, 1 << 17);
        DeviceMesh all = new DeviceMesh(0, 16);
        double trainFlops = 6.0 * L7.totalParams() * w.tokens();
        for (ParallelStrategy s : List.of(ParallelStrategy.of(2, 8, 1, 1), ParallelStrategy.of(16, 1, 1, 1),
                ParallelStrategy.of(2, 4, 2, 1), new ParallelStrategy(16, 1, 1, 1, true))) {
            List<CallEstimate> e = m.estimate(g.call(g.indexOf("actor_train")), L7, w, true, all, s, true);
            assertTrue(!e.isEmpty(), s.label());
            for (CallEstimate x : e) {
                assertTrue(x.seconds() >= trainFlops / (16 * cluster.gpu().peakFlops()), s.label());
                assertTrue(x.transientBytes() + x.homeStateBytes() <= m.memoryLimit(), s.label());
            }
        }
        // a 7B model does not train on one 80 GB device (18 bytes a parameter)
        assertTrue(m.estimate(g.call(g.indexOf("actor_train")), L7, w, true, new DeviceMesh(0, 1),
                ParallelStrategy.of(1, 1, 1, 1), true).isEmpty());
        // decoding: fewer sequences a replica is not slower
        var gen = g.call(g.indexOf("actor_gen"));
        double one = m.estimate(gen, L7, w, true, new DeviceMesh(0, 8), ParallelStrategy.of(8, 1, 1, 1), false).get(0).seconds();
        double two = m.estimate(gen, L7, w, true, new DeviceMesh(0, 4), ParallelStrategy.of(4, 1, 1, 1), false).get(0).seconds();
        assertTrue(one <= two);
    }
}
