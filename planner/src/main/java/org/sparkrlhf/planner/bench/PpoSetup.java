package org.sparkrlhf.planner.bench;

import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.FlopCounter;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.util.Map;

/**
 * One of ReaL's PPO setups: prompt 128 tokens, 2^17 tokens a batch, 4 PPO mini-batches, nodes of 8 H100.
 * "actor": actor and reference at {@code scaled}, critic and reward 7B; "critic": the reverse;
 * "both": all four at {@code scaled}.
 */
public record PpoSetup(String scenario, String scaled, int gpus, int genLen) {
    public static final int PROMPT = 128;
    public static final long BATCH_TOKENS = 1L << 17;

    public ModelSpec actor() {
        return ModelSpec.preset(scenario.equals("critic") ? "llama2-7b" : scaled);
    }

    public ModelSpec critic() {
        return ModelSpec.preset(scenario.equals("actor") ? "llama2-7b" : scaled).withValueHead();
    }

    public Workload workload() {
        return new Workload(PROMPT, genLen, BATCH_TOKENS);
    }

    public PlanningProblem problem(CostConstants k) {
        ModelSpec a = actor();
        ModelSpec c = critic();
        return new PlanningProblem(Algorithms.ppo(4), Map.of("actor", a, "ref", a, "critic", c, "reward", c),
                ClusterSpec.h100(gpus / 8, 8), workload(), k, ProfileTable.empty());
    }

    /** FLOPs of one iteration, ReaL's convention. */
    public double flops() {
        ModelSpec a = actor();
        ModelSpec c = critic();
        return FlopCounter.ppoIteration(a, c, a, c, workload().sequences(), PROMPT, genLen);
    }

    public String label() {
        return String.format("%-6s %-13s %3d GPUs gen %3d", scenario, scaled, gpus, genLen);
    }

    public static PpoSetup of(PublishedReal.Point p) {
        return new PpoSetup(p.scenario(), p.scaledModel(), p.gpus(), p.genLen());
    }
}
