package org.sparkrlhf.planner.graph;

import java.util.ArrayList;
import java.util.List;

/**
 * The dataflow graphs of the supported algorithms, written as data (as ReaLHF does). Call names, roles
 * and keys are the contract with the runtime:
 * <ul>
 *   <li>roles: {@code actor} (the policy), {@code critic} (value model), {@code ref} (frozen reference
 *   policy), {@code reward} (frozen reward model; trained by {@code rw});</li>
 *   <li>keys: {@code packed_prompts} (dataset), {@code packed_input_ids} (prompt + response tokens),
 *   {@code prompt_mask}, {@code packed_logprobs} (behaviour policy), {@code packed_ref_logprobs},
 *   {@code rewards}, {@code values}, {@code greedy_input_ids}, {@code greedy_rewards}, {@code group_ids}.</li>
 * </ul>
 * For the preference algorithms the dataset supplies {@code packed_input_ids} with chosen and rejected
 * answers of every pair next to each other. Driver hooks ({@link DriverHook}) compute what no model
 * does: {@code advantages} (group-normalised, leave-one-out, greedy baseline, or PPO's GAE with the KL
 * penalty, which also gives {@code returns}), and {@code rewards} when a reward function on the
 * driver scores the responses instead of a reward model ({@code rewardModel == false}: the
 * {@code reward_inf} calls become {@code reward_fn} hooks).
 */
public final class Algorithms {
    public static final List<String> NAMES = List.of("sft", "rw", "ppo", "grpo", "remax", "rloo", "dpo", "ipo",
            "gr-dpo", "gr-ipo");

    /** The S3D draft's training call (see {@link #withS3dTraining}). */
    public static final String S3D_TRAIN = "s3d_train";

    private Algorithms() {
    }

    /**
     * {@code graph} with the actor's S3D draft kept in step with the actor that drafts with it: a
     * DRAFT_TRAIN call {@code s3d_train} on the actor, of {@code steps} steps on the iteration's
     * sequences ({@code packed_input_ids}). It comes last among the actor's calls, so that it runs
     * after actor_train (the actor's calls run in the graph's order; it drafts with the updated
     * weights) and the next iteration's actor_gen waits for it (the first call on a model waits
     * for the last call on it of the previous iteration). Only for a graph that samples from the
     * actor (a GENERATE call on it).
     */
    public static DataflowGraph withS3dTraining(DataflowGraph graph, int steps) {
        boolean samples = graph.calls().stream()
                .anyMatch(c -> c.role().equals("actor") && c.kind() == CallKind.GENERATE);
        if (!samples) {
            throw new IllegalArgumentException("algorithm " + graph.algorithm()
                    + ": speculative decoding needs a generation on the actor; the graph has none");
        }
        List<ModelCall> calls = new ArrayList<>(graph.calls());
        calls.add(ModelCall.draftTrain(S3D_TRAIN, "actor", List.of("packed_input_ids"), steps));
        return new DataflowGraph(graph.algorithm(), calls, graph.hooks());
    }

    /** The graph of {@code algorithm} with rewards from a reward model; {@code ppoMinibatches} is the number of optimizer steps per RL batch. */
    public static DataflowGraph of(String algorithm, int ppoMinibatches) {
        return of(algorithm, ppoMinibatches, true);
    }

    /** The graph of {@code algorithm}; without a reward model the responses are scored by a reward function on the driver. */
    public static DataflowGraph of(String algorithm, int ppoMinibatches, boolean rewardModel) {
        return switch (algorithm) {
            case "sft" -> sft();
            case "rw" -> rewardModeling();
            case "ppo" -> ppo(ppoMinibatches, rewardModel);
            case "grpo" -> grouped("grpo", "group_advantages", ppoMinibatches, rewardModel);
            case "rloo" -> grouped("rloo", "leave_one_out_advantages", ppoMinibatches, rewardModel);
            case "remax" -> remax(ppoMinibatches, rewardModel);
            case "dpo", "ipo" -> dpo(algorithm, false);
            case "gr-dpo", "gr-ipo" -> dpo(algorithm, true);
            default -> throw new IllegalArgumentException("unknown algorithm '" + algorithm + "'; known: " + NAMES);
        };
    }

    /** Supervised fine-tuning: one training call. */
    public static DataflowGraph sft() {
        return new DataflowGraph("sft", List.of(
                ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask"), 1)));
    }

    /** Reward modelling on preference pairs: one training call on the reward model. */
    public static DataflowGraph rewardModeling() {
        return new DataflowGraph("rw", List.of(
                ModelCall.train("reward_train", "reward", List.of("packed_input_ids", "prompt_mask"), 1)));
    }

    /** PPO: actor_gen -> {reward_inf, ref_inf, critic_inf} -> ppo_targets (KL penalty, GAE) -> {actor_train, critic_train}. */
    public static DataflowGraph ppo(int minibatches) {
        return ppo(minibatches, true);
    }

    static DataflowGraph ppo(int minibatches, boolean rewardModel) {
        List<ModelCall> calls = new ArrayList<>();
        List<DriverHook> hooks = new ArrayList<>();
        calls.add(ModelCall.generate("actor_gen", "actor", List.of("packed_prompts"),
                List.of("packed_input_ids", "prompt_mask", "packed_logprobs")));
        reward(calls, hooks, "reward_inf", "reward_fn", "packed_input_ids", "prompt_mask", "rewards", rewardModel);
        calls.add(ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                List.of("packed_ref_logprobs")));
        calls.add(ModelCall.inference("critic_inf", "critic", List.of("packed_input_ids", "prompt_mask"), List.of("values")));
        hooks.add(new DriverHook("ppo_targets", List.of("rewards", "packed_logprobs", "packed_ref_logprobs", "values"),
                List.of("advantages", "returns")));
        calls.add(ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                "advantages"), minibatches));
        calls.add(ModelCall.train("critic_train", "critic", List.of("packed_input_ids", "prompt_mask", "values",
                "returns"), minibatches));
        return new DataflowGraph("ppo", calls, hooks);
    }

    /** GRPO: prompts sampled in groups; advantages are rewards normalised within the group; no critic. */
    public static DataflowGraph grpo(int minibatches) {
        return grouped("grpo", "group_advantages", minibatches, true);
    }

    /** RLOO: k samples per prompt, each one's baseline the mean reward of the other k-1. */
    public static DataflowGraph rloo(int minibatches) {
        return grouped("rloo", "leave_one_out_advantages", minibatches, true);
    }

    /**
     * The algorithms that sample a group of responses per prompt and take each sample's baseline from
     * its group (GRPO, RLOO): they differ only in the advantage hook.
     */
    private static DataflowGraph grouped(String name, String advantageHook, int minibatches, boolean rewardModel) {
        List<ModelCall> calls = new ArrayList<>();
        List<DriverHook> hooks = new ArrayList<>();
        calls.add(ModelCall.generate("actor_gen", "actor", List.of("packed_prompts", "group_ids"),
                List.of("packed_input_ids", "prompt_mask", "packed_logprobs")));
        reward(calls, hooks, "reward_inf", "reward_fn", "packed_input_ids", "prompt_mask", "rewards", rewardModel);
        calls.add(ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                List.of("packed_ref_logprobs")));
        hooks.add(new DriverHook(advantageHook, List.of("rewards", "group_ids"), List.of("advantages")));
        calls.add(ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                "packed_ref_logprobs", "advantages"), minibatches));
        return new DataflowGraph(name, calls, hooks);
    }

    /** ReMax: a sampled and a greedy response per prompt; the greedy response's reward is the baseline. */
    public static DataflowGraph remax(int minibatches) {
        return remax(minibatches, true);
    }

    static DataflowGraph remax(int minibatches, boolean rewardModel) {
        List<ModelCall> calls = new ArrayList<>();
        List<DriverHook> hooks = new ArrayList<>();
        calls.add(ModelCall.generate("actor_gen", "actor", List.of("packed_prompts"),
                List.of("packed_input_ids", "prompt_mask", "packed_logprobs")));
        calls.add(ModelCall.generate("actor_greedy_gen", "actor", List.of("packed_prompts"),
                List.of("greedy_input_ids", "greedy_prompt_mask")));
        reward(calls, hooks, "reward_inf", "reward_fn", "packed_input_ids", "prompt_mask", "rewards", rewardModel);
        reward(calls, hooks, "reward_greedy_inf", "greedy_reward_fn", "greedy_input_ids", "greedy_prompt_mask",
                "greedy_rewards", rewardModel);
        calls.add(ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                List.of("packed_ref_logprobs")));
        hooks.add(new DriverHook("greedy_baseline_advantages", List.of("rewards", "greedy_rewards"),
                List.of("advantages")));
        calls.add(ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                "packed_ref_logprobs", "advantages"), minibatches));
        return new DataflowGraph("remax", calls, hooks);
    }

    /** A reward_inf call on the reward model, or (without one) a hook scoring with the reward function. */
    private static void reward(List<ModelCall> calls, List<DriverHook> hooks, String call, String hook, String ids,
                               String mask, String out, boolean rewardModel) {
        if (rewardModel) {
            calls.add(ModelCall.inference(call, "reward", List.of(ids, mask), List.of(out)));
        } else {
            hooks.add(new DriverHook(hook, List.of("packed_prompts", ids), List.of(out)));
        }
    }

    /**
     * DPO / IPO (the loss differs, the graph does not); the group-robust variants also read the group
     * of every pair to weight the worst groups.
     */
    public static DataflowGraph dpo(String name, boolean groupRobust) {
        List<String> in = List.of("packed_input_ids", "prompt_mask");
        List<String> trainIn = groupRobust
                ? List.of("packed_input_ids", "prompt_mask", "packed_ref_logprobs", "group_ids")
                : List.of("packed_input_ids", "prompt_mask", "packed_ref_logprobs");
        return new DataflowGraph(name, List.of(
                ModelCall.inference("ref_inf", "ref", in, List.of("packed_ref_logprobs")),
                ModelCall.train("actor_train", "actor", trainIn, 1)));
    }
}
