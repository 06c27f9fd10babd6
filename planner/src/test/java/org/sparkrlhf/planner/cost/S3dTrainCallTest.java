package org.sparkrlhf.planner.cost;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.planner.Planner;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.sim.TimelineEvent;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Speculation;
import org.sparkrlhf.planner.spec.Workload;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The S3D draft's training as a call of the graph: where it sits, what it costs, that plans place it. */
class S3dTrainCallTest {
    private static final ModelSpec L7 = ModelSpec.preset("llama2-7b");

    @Test
    void s3dTrainIsTheActorsLastCallAfterActorTrain() {
        for (String algorithm : List.of("grpo", "ppo")) {
            DataflowGraph g = Algorithms.withS3dTraining(Algorithms.of(algorithm, 2), 3);
            ModelCall s3d = g.call(g.indexOf(Algorithms.S3D_TRAIN));
            assertEquals(CallKind.DRAFT_TRAIN, s3d.kind());
            assertEquals("actor", s3d.role());
            assertEquals(3, s3d.trainSteps());
            List<Integer> actor = g.callsOnRole("actor");
            assertEquals(g.indexOf("actor_train"), actor.get(actor.size() - 2));
            assertEquals(g.indexOf(Algorithms.S3D_TRAIN), actor.get(actor.size() - 1));
            // it reads the rollouts, and the actor's home stays actor_train's layout
            assertTrue(java.util.Arrays.stream(g.dependencies(g.indexOf(Algorithms.S3D_TRAIN)))
                    .anyMatch(d -> d == g.indexOf("actor_gen")));
            assertEquals(g.indexOf("actor_train"), g.homeCall("actor"));
            assertEquals(2, g.withEpochs(2).call(g.indexOf("actor_train")).epochs());
            assertEquals(1, g.withEpochs(2).call(g.indexOf(Algorithms.S3D_TRAIN)).epochs());
        }
        assertThrows(IllegalArgumentException.class, () -> Algorithms.withS3dTraining(Algorithms.of("dpo", 1), 1));
    }

    @Test
    void aStepIsAForwardAndAnInputGradientBackwardOverItsExamples() {
        ClusterSpec cluster = ClusterSpec.h100(1, 8);
        CostConstants k = CostConstants.calibrated();
        CallCostModel m = new CallCostModel(cluster, k, ProfileTable.empty());
        ComputeModel compute = new ComputeModel(cluster.gpu(), k, ProfileTable.empty());
        CommModel comm = new CommModel(cluster, k);
        // 2^17 tokens of 384-token sequences: 341 sequences, 85 per replica on dp 4: 32 examples a step
        Workload w = new Workload(128, 256, 1 << 17, new Speculation(8, 16, 3, 0.5));
        DataflowGraph g = Algorithms.withS3dTraining(Algorithms.of("grpo", 1), 5);
        ModelCall s3d = g.call(g.indexOf(Algorithms.S3D_TRAIN));
        ParallelStrategy s = ParallelStrategy.of(4, 1, 1, 1);
        List<CallEstimate> est = m.estimate(s3d, L7, w, true, new DeviceMesh(0, 4), s, false);
        assertEquals(1, est.size());
        double tokens = 32 * 384.0, masks = 32 * 3.0;
        double step = 32 * (compute.layerForward(L7, tokens, 384, 1) + compute.layerBackward(L7, tokens, 384, 1) / 2)
                + compute.headForward(L7, masks, 1) + compute.headBackward(L7, masks, 1) / 2
                + comm.allReduce(4.0 * 3 * 4096, 4, false) + compute.memoryPass(28.0 * 3 * 4096) + k.microBatchOverhead();
        assertEquals(5 * step + k.callOverhead(), est.get(0).seconds(), 1e-12 * step);
        // memory: a weights copy away from home, and the step's buffers worked out per token
        assertEquals(2.0 * L7.totalParams(), est.get(0).weightCopyBytes(), 0);
        double perTokenLayer = 2.0 * (4 * 4096 + 2 * 4096 + 2 * 4096 + 3 * 11008) + 4.0 * (2 + 32);
        double trunk = 4 * 4 + 2 * 4096 + 4 * (1 + 3);
        double scratch = 4.0 * (3 * 4096 + 2 * 4096 + 2 * 4096 + 3 * 11008) + 4 * 2;
        double maskRows = 96 * 32000 * 4 * 2 + 4.0 * (5 * 96 + 128) * 4096 + 4.0 * (3 * 96 + 128) + 4.0 * 3 * 96;
        double bytes = tokens * (32 * perTokenLayer + 2 * 4096 + trunk) + tokens * scratch + maskRows + 16.0 * 3 * 4096;
        assertEquals(bytes, est.get(0).transientBytes(), 1e-9 * bytes);
        // fewer rows than 32 per replica: as many examples as rows; no draft training on tensor or pipeline shards
        Workload small = new Workload(128, 256, 384 * 40, w.speculation());
        double few = m.estimateFixed(s3d, L7, small, true, new DeviceMesh(0, 4), s, false).seconds();
        double tokens10 = 10 * 384.0, masks10 = 30;
        double step10 = 32 * (compute.layerForward(L7, tokens10, 384, 1) + compute.layerBackward(L7, tokens10, 384, 1) / 2)
                + compute.headForward(L7, masks10, 1) + compute.headBackward(L7, masks10, 1) / 2
                + comm.allReduce(4.0 * 3 * 4096, 4, false) + compute.memoryPass(28.0 * 3 * 4096) + k.microBatchOverhead();
        assertEquals(5 * step10 + k.callOverhead(), few, 1e-12 * step10);
        assertTrue(m.estimate(s3d, L7, w, true, new DeviceMesh(0, 8), ParallelStrategy.of(4, 2, 1, 1), false).isEmpty());
        assertThrows(IllegalArgumentException.class, () -> m.estimateFixed(s3d, L7, w, true, new DeviceMesh(0, 8),
                ParallelStrategy.of(4, 2, 1, 1), false));
        assertThrows(IllegalArgumentException.class, () -> m.estimate(s3d, L7, new Workload(128, 256, 1 << 17), true,
                new DeviceMesh(0, 4), s, false));
    }

    @Test
    @Timeout(60)
    void thePlannerPlacesItAndTheSimulatorRunsItBeforeTheNextGeneration() {
        ModelSpec tiny = ModelSpec.llama("tiny-llama", 4, 256, 688, 8, 4, 1000);
        DataflowGraph g = Algorithms.withS3dTraining(Algorithms.of("grpo", 2, false), 4);
        PlanningProblem p = new PlanningProblem(g, Map.of("actor", tiny, "ref", tiny),
                ClusterSpec.cpu(2, 2, 2 * GpuSpec.GIB), new Workload(32, 32, 4096, new Speculation(1, 3, 2, 0.5)),
                CostConstants.calibrated(), ProfileTable.empty());
        Planner.Outcome o = Planner.plan(p, 1, 30, 2000);
        assertTrue(o.result().feasible());
        int c = g.indexOf(Algorithms.S3D_TRAIN);
        Candidate placed = o.plan()[c];
        assertEquals(1, placed.strategy().tp());
        assertEquals(1, placed.strategy().pp());
        assertTrue(o.result().callSeconds()[c] > 0);
        double s3dEnd = Double.NaN, trainEnd = Double.NaN, nextGen = Double.NaN;
        for (TimelineEvent e : o.result().timeline()) {
            if (e.reallocation()) {
                continue;
            }
            if (e.iteration() == 1 && e.label().equals(Algorithms.S3D_TRAIN)) {
                s3dEnd = e.end();
                assertTrue(e.start() >= trainEnd, "s3d_train starts after actor_train");
            } else if (e.iteration() == 1 && e.label().equals("actor_train")) {
                trainEnd = e.end();
            } else if (e.iteration() == 2 && e.label().equals("actor_gen")) {
                nextGen = e.start();
            }
        }
        assertTrue(s3dEnd <= nextGen, "the next actor_gen drafts with the trained draft");
    }
}
