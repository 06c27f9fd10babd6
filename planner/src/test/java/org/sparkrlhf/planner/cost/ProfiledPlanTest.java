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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A plan on one CPU slot priced from a synthetic profile table whose per-op times are known. */
class ProfiledPlanTest {
    private static final ModelSpec M = ModelSpec.llama("m", 2, 64, 128, 4, 4, 100);
    private static final double FWD = 0.010, BWD = 0.025, DECODE = 0.002, HEAD_FWD = 0.004, HEAD_BWD = 0.006;
    private static final double CALL = 0.050, STEP = 0.003, MICRO = 0.007, REALLOC = 0.040, TRAIN_STEP = 0.011,
            TRAIN_PEER = 0.005;
    /** Parameters per second moved by a reallocation inside an executor and between two. */
    private static final double INTRA = 2e6, INTER = 5e5;
    /** A two-device all-reduce inside an executor: 2 ms, then 1e8 bytes/s. */
    private static final RuntimeCosts.Link ALL_REDUCE = new RuntimeCosts.Link(0.002, 1e8);
    private static final RuntimeCosts COSTS = new RuntimeCosts(CALL, STEP, MICRO, REALLOC, INTRA, INTER, ALL_REDUCE,
            RuntimeCosts.Link.NOT_MEASURED, Double.NaN, TRAIN_STEP, TRAIN_PEER);

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
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
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
        // generate: a prefill (2 layers + head, one micro-batch) that samples the first of the 4 new tokens, then
        // 3 steps of 2 layer decodes + head + the step's overhead
        double gen = (2 * FWD + HEAD_FWD + MICRO) + 3 * (2 * DECODE + HEAD_FWD + STEP) + CALL;
        // inference: one forward of 2 layers and the head
        double score = 2 * FWD + HEAD_FWD + MICRO + CALL;
        // train: forward and backward of 2 layers and the head, then AdamW's memory pass over the parameters, and
        // the step's fixed seconds
        double adam = 30.0 * M.totalParams() / (cluster.gpu().memoryBandwidth() * k.memoryEfficiency());
        double train = 2 * FWD + HEAD_FWD + 2 * BWD + HEAD_BWD + MICRO + adam + TRAIN_STEP + CALL;
        assertEquals(gen, plan[0].estimate().seconds(), 1e-12);
        assertEquals(score, plan[1].estimate().seconds(), 1e-12);
        assertEquals(train, plan[2].estimate().seconds(), 1e-12);

        SimResult r = new Simulator(p).simulate(plan);
        assertTrue(r.feasible());
        // one slot: the calls run one after the other, nothing moves
        assertEquals(gen + score + train, r.iterationSeconds(), 1e-9);
    }

    @Test
    void generationThatWritesLogprobsAlsoPaysTheirForward() {
        // GRPO's and PPO's actor_gen: sequences, prompt mask and the generating policy's logprobs
        ModelCall sampleOnly = ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids", "prompt_mask"));
        ModelCall scoring = ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids", "prompt_mask",
                "packed_logprobs"));
        DataflowGraph g = new DataflowGraph("t", List.of(scoring));
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
        ClusterSpec cluster = ClusterSpec.cpu(1, 1, 8 * GpuSpec.GIB);
        PlanningProblem p = new PlanningProblem(g, Map.of("x", M), cluster, new Workload(4, 4, 64), k, table());
        DeviceMesh mesh = new DeviceMesh(0, 1);
        ParallelStrategy one = ParallelStrategy.of(1, 1, 1, 1);
        double gen = (2 * FWD + HEAD_FWD + MICRO) + 3 * (2 * DECODE + HEAD_FWD + STEP) + CALL;
        // then one forward of 2 layers and the head over prompt + response, in the same call (no second overhead)
        double forward = 2 * FWD + HEAD_FWD + MICRO;
        assertEquals(gen, p.costModel().estimateFixed(sampleOnly, M, p.workload(), true, mesh, one, true).seconds(), 1e-12);
        assertEquals(gen + forward, p.costModel().estimateFixed(scoring, M, p.workload(), true, mesh, one, true).seconds(),
                1e-12);
        // the searched variants price it the same way
        assertEquals(gen + forward, p.costModel().estimate(scoring, M, p.workload(), true, mesh, one, true).get(0).seconds(),
                1e-12);
    }

    @Test
    void aDecodingStepPaysTheProfiledHeadDecodeInPlaceOfTheHeadsForward() {
        // the profiler's head_decode row is what a step spends beyond its layers (the head at the decode
        // batch, sampling, the stop check): priced once, with no head_fwd beside it
        double headDecode = 0.0015;
        List<String> lines = new java.util.ArrayList<>(List.of("model,gpu,op,tp,tokens,context,seconds",
                "m,cpu,layer_fwd,1,100000,8," + FWD, "m,cpu,layer_bwd,1,100000,8," + BWD,
                "m,cpu,layer_decode,1,100000,6," + DECODE, "m,cpu,head_fwd,1,100000,0," + HEAD_FWD,
                "m,cpu,head_bwd,1,100000,0," + HEAD_BWD, "m,cpu,head_decode,1,100000,0," + headDecode));
        ProfileTable withStep = ProfileTable.empty().read("synthetic.csv", lines);
        ModelCall gen = ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids"));
        DataflowGraph g = new DataflowGraph("t", List.of(gen));
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
        ClusterSpec cluster = ClusterSpec.cpu(1, 1, 8 * GpuSpec.GIB);
        PlanningProblem p = new PlanningProblem(g, Map.of("x", M), cluster, new Workload(4, 4, 64), k, withStep);
        double expected = (2 * FWD + HEAD_FWD + MICRO) + 3 * (2 * DECODE + headDecode + STEP) + CALL;
        assertEquals(expected, p.costModel().estimateFixed(gen, M, p.workload(), true, new DeviceMesh(0, 1),
                ParallelStrategy.of(1, 1, 1, 1), true).seconds(), 1e-12);
    }

    @Test
    void microBatchesEachPayTheMeasuredOverhead() {
        DataflowGraph g = new DataflowGraph("t", List.of(
                ModelCall.inference("score", "y", List.of("p"), List.of("rewards")),
                ModelCall.train("train", "x", List.of("p", "rewards"), 1)));
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
        ClusterSpec cluster = ClusterSpec.cpu(1, 1, 8 * GpuSpec.GIB);
        PlanningProblem p = new PlanningProblem(g, Map.of("x", M, "y", M), cluster, new Workload(4, 4, 64), k, table());
        ParallelStrategy four = ParallelStrategy.of(1, 1, 1, 4);
        DeviceMesh mesh = new DeviceMesh(0, 1);
        double score = p.costModel().estimateFixed(g.calls().get(0), M, p.workload(), false, mesh, four, true).seconds();
        double train = p.costModel().estimateFixed(g.calls().get(1), M, p.workload(), true, mesh, four, true).seconds();
        double adam = 30.0 * M.totalParams() / (cluster.gpu().memoryBandwidth() * k.memoryEfficiency());
        // four passes of 2 sequences each (the table's rows hold at every token count), each with its overhead
        assertEquals(4 * (2 * FWD + HEAD_FWD + MICRO) + CALL, score, 1e-12);
        assertEquals(4 * (2 * FWD + HEAD_FWD + 2 * BWD + HEAD_BWD + MICRO) + adam + TRAIN_STEP + CALL, train, 1e-12);

        // two epochs over two mini-batches (optimizer steps) of 4 sequences: four steps, one micro-batch each, each
        // with the step's fixed seconds
        ModelCall epochs = ModelCall.train("train", "x", List.of("p", "rewards"), 2).withEpochs(2);
        double twice = p.costModel().estimateFixed(epochs, M, p.workload(), true, mesh, ParallelStrategy.of(1, 1, 1, 1),
                true).seconds();
        assertEquals(2 * 2 * (2 * FWD + HEAD_FWD + 2 * BWD + HEAD_BWD + MICRO + adam + TRAIN_STEP) + CALL, twice, 1e-12);
    }

    @Test
    void dataParallelReplicasSyncGradientsAtTheMeasuredAllReduce() {
        DataflowGraph g = new DataflowGraph("t", List.of(ModelCall.train("train", "x", List.of("p"), 1)));
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
        ClusterSpec cluster = ClusterSpec.cpu(1, 2, 8 * GpuSpec.GIB);
        PlanningProblem p = new PlanningProblem(g, Map.of("x", M), cluster, new Workload(4, 4, 64), k, table());
        double train = p.costModel().estimateFixed(g.calls().get(0), M, p.workload(), true, new DeviceMesh(0, 2),
                ParallelStrategy.of(2, 1, 1, 1), true).seconds();
        double params = M.totalParams();
        // each replica's 4 sequences in one micro-batch; then a reduce-scatter of fp32 gradients and an all-gather of
        // bf16 weights over the two replicas, each moving half its buffer at the measured bandwidth after the
        // measured two-device latency; AdamW over half the parameters; the step's measured seconds, and those of its one
        // data-parallel peer (the calls on one device above pay none)
        double sync = 0.5 * 4 * params / 1e8 + 0.002 + 0.5 * 2 * params / 1e8 + 0.002;
        double adam = 30.0 * params / 2 / (cluster.gpu().memoryBandwidth() * k.memoryEfficiency());
        assertEquals(2 * FWD + HEAD_FWD + 2 * BWD + HEAD_BWD + MICRO + sync + adam + TRAIN_STEP + TRAIN_PEER + CALL, train,
                1e-12);
    }

    @Test
    void reallocationsMoveParametersAtTheMeasuredRates() {
        long params = 0;
        for (var param : org.sparkrlhf.planner.realloc.ModelParameters.all(M)) {
            params += param.elements();
        }
        CostConstants k = CostConstants.calibrated().withRuntimeCosts(COSTS);
        DataflowGraph g = new DataflowGraph("t", List.of(
                ModelCall.generate("gen", "x", List.of("p"), List.of("packed_input_ids")),
                ModelCall.inference("score", "y", List.of("packed_input_ids"), List.of("rewards")),
                ModelCall.train("train", "x", List.of("packed_input_ids", "rewards"), 1)));
        ParallelStrategy one = ParallelStrategy.of(1, 1, 1, 1);
        // two slots of one executor; then one slot on each of two executors
        for (ClusterSpec cluster : List.of(ClusterSpec.cpu(1, 2, 8 * GpuSpec.GIB), ClusterSpec.cpu(2, 1, 8 * GpuSpec.GIB))) {
            boolean across = cluster.nodes() == 2;
            PlanningProblem p = new PlanningProblem(g, Map.of("x", M, "y", M), cluster, new Workload(4, 4, 64), k,
                    table());
            double realloc = params / (across ? INTER : INTRA) + cluster.interNodeLatency() + REALLOC;
            assertEquals(realloc, p.reallocSeconds("x", new DeviceMesh(1, 1), one, new DeviceMesh(0, 1), one), 1e-12);

            // generation and scoring on device 0, training (the actor's home) on device 1: every iteration moves
            // the trained actor to device 0 before generating, and the batch to device 1 before training
            DeviceMesh[] meshes = {new DeviceMesh(0, 1), new DeviceMesh(0, 1), new DeviceMesh(1, 1)};
            Candidate[] plan = new Candidate[3];
            double[] seconds = new double[3];
            for (int c = 0; c < 3; c++) {
                ModelCall call = g.calls().get(c);
                CallEstimate e = p.costModel().estimateFixed(call, p.modelOf(c), p.workload(),
                        g.isTrainable(call.role()), meshes[c], one, c != 0);
                plan[c] = new Candidate(c, meshes[c], one, e, -1);
                seconds[c] = e.seconds();
            }
            // the last input of the train call: score's rewards (4 bytes a sequence; generation's tokens
            // arrived during scoring)
            double inputs = 4.0 * 8 / p.costModel().comm().interBandwidth() + cluster.interNodeLatency();
            SimResult r = new Simulator(p).simulate(plan);
            assertTrue(r.feasible());
            assertEquals(realloc + seconds[0] + seconds[1] + inputs + seconds[2], r.iterationSeconds(), 1e-9,
                    across ? "two executors" : "one executor");
        }
    }

    @Test
    void runtimeCostsRoundTrip() {
        for (RuntimeCosts c : List.of(COSTS, new RuntimeCosts(0.0123, 4.5e-4, 2e-3, 0.08, 3.5e7, Double.NaN,
                RuntimeCosts.Link.NOT_MEASURED, new RuntimeCosts.Link(1e-3, 2e8), 3.2e-9, 0, 0))) {
            RuntimeCosts back = RuntimeCosts.parse("costs", List.of(c.format().split("\n")));
            assertEquals(c, back);
        }
    }

    @Test
    void costsWithoutATrainStepCalibrationPriceNone() {
        List<String> lines = new java.util.ArrayList<>(List.of(COSTS.format().split("\n")));
        lines.removeIf(l -> l.startsWith("train_step_seconds=") || l.startsWith("train_step_per_peer_seconds="));
        assertEquals(COSTS.withTrainStep(0, 0), RuntimeCosts.parse("costs", lines));
    }

    @Test
    void costsOfTheOlderFormatAreAnErrorThatSaysToProfileAgain() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RuntimeCosts.parse("old.costs",
                List.of("call_overhead_seconds=1e-1", "decode_step_seconds=1e-3")));
        assertTrue(e.getMessage().contains("profile again"), e.getMessage());
    }
}
