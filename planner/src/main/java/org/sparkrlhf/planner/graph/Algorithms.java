package org.sparkrlhf.planner.graph;

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
 * answers of every pair next to each other.
 */
public final class Algorithms {
    public static final List<String> NAMES = List.of("sft", "rw", "ppo", "grpo", "remax", "rloo", "dpo", "ipo",
            "gr-dpo", "gr-ipo");

    private Algorithms() {
    }

    /** The graph of {@code algorithm}; {@code ppoMinibatches} is the number of optimizer steps per RL batch. */
    public static DataflowGraph of(String algorithm, int ppoMinibatches) {
        return switch (algorithm) {
            case "sft" -> sft();
            case "rw" -> rewardModeling();
            case "ppo" -> ppo(ppoMinibatches);
            case "grpo" -> grpo(ppoMinibatches);
            case "remax" -> remax(ppoMinibatches);
            case "rloo" -> rloo(ppoMinibatches);
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

    /** PPO: actor_gen -> {reward_inf, ref_inf, critic_inf} -> {actor_train, critic_train}. */
    public static DataflowGraph ppo(int minibatches) {
        List<String> trainIn = List.of("packed_input_ids", "prompt_mask", "packed_logprobs", "packed_ref_logprobs",
                "rewards", "values");
        return new DataflowGraph("ppo", List.of(
                ModelCall.generate("actor_gen", "actor", List.of("packed_prompts"),
                        List.of("packed_input_ids", "prompt_mask", "packed_logprobs")),
                ModelCall.inference("reward_inf", "reward", List.of("packed_input_ids", "prompt_mask"), List.of("rewards")),
                ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                        List.of("packed_ref_logprobs")),
                ModelCall.inference("critic_inf", "critic", List.of("packed_input_ids", "prompt_mask"), List.of("values")),
                ModelCall.train("actor_train", "actor", trainIn, minibatches),
                ModelCall.train("critic_train", "critic", trainIn, minibatches)));
    }

    /**
     * GRPO: prompts are sampled in groups (the dataset repeats each prompt group-size times), advantages
     * are rewards normalised within the group; no critic.
     */
    public static DataflowGraph grpo(int minibatches) {
        return new DataflowGraph("grpo", List.of(
                ModelCall.generate("actor_gen", "actor", List.of("packed_prompts", "group_ids"),
                        List.of("packed_input_ids", "prompt_mask", "packed_logprobs")),
                ModelCall.inference("reward_inf", "reward", List.of("packed_input_ids", "prompt_mask"), List.of("rewards")),
                ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                        List.of("packed_ref_logprobs")),
                ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                        "packed_ref_logprobs", "rewards", "group_ids"), minibatches)));
    }

    /** ReMax: a sampled and a greedy response per prompt; the greedy response's reward is the baseline. */
    public static DataflowGraph remax(int minibatches) {
        return new DataflowGraph("remax", List.of(
                ModelCall.generate("actor_sample_gen", "actor", List.of("packed_prompts"),
                        List.of("packed_input_ids", "prompt_mask", "packed_logprobs")),
                ModelCall.generate("actor_greedy_gen", "actor", List.of("packed_prompts"),
                        List.of("greedy_input_ids", "greedy_prompt_mask")),
                ModelCall.inference("reward_inf", "reward", List.of("packed_input_ids", "prompt_mask"), List.of("rewards")),
                ModelCall.inference("reward_greedy_inf", "reward", List.of("greedy_input_ids", "greedy_prompt_mask"),
                        List.of("greedy_rewards")),
                ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                        "rewards", "greedy_rewards"), minibatches)));
    }

    /** RLOO: k samples per prompt, each one's baseline the mean reward of the other k-1. */
    public static DataflowGraph rloo(int minibatches) {
        return new DataflowGraph("rloo", List.of(
                ModelCall.generate("actor_gen", "actor", List.of("packed_prompts", "group_ids"),
                        List.of("packed_input_ids", "prompt_mask", "packed_logprobs")),
                ModelCall.inference("reward_inf", "reward", List.of("packed_input_ids", "prompt_mask"), List.of("rewards")),
                ModelCall.inference("ref_inf", "ref", List.of("packed_input_ids", "prompt_mask"),
                        List.of("packed_ref_logprobs")),
                ModelCall.train("actor_train", "actor", List.of("packed_input_ids", "prompt_mask", "packed_logprobs",
                        "packed_ref_logprobs", "rewards", "group_ids"), minibatches)));
    }

    /**
     * DPO / IPO (the loss differs, the graph does not); the group-robust variants also read the group
     * of every pair to weight the worst groups.
     */
    public static DataflowGraph dpo(String name, boolean groupRobust) {
        List<String> in = groupRobust ? List.of("packed_input_ids", "prompt_mask", "group_ids")
                : List.of("packed_input_ids", "prompt_mask");
        List<String> trainIn = groupRobust
                ? List.of("packed_input_ids", "prompt_mask", "packed_ref_logprobs", "group_ids")
                : List.of("packed_input_ids", "prompt_mask", "packed_ref_logprobs");
        return new DataflowGraph(name, List.of(
                ModelCall.inference("ref_inf", "ref", in, List.of("packed_ref_logprobs")),
                ModelCall.train("actor_train", "actor", trainIn, 1)));
    }
}
