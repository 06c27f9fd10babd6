package org.sparkrlhf.jobs.config;

import java.util.List;

/**
 * The training algorithms a run can use, with the model roles each needs and the one it trains.
 * Their calls and hooks are their dataflow graphs in the planner ({@code Algorithms.of}), the one
 * description of each; their bindings are the specs of the jobs module's {@code AlgorithmSpecs}.
 */
public enum Algorithm {
    SFT("sft", List.of("actor")),
    RW("rw", List.of("reward")),
    PPO("ppo", List.of("actor", "ref", "critic")),
    GRPO("grpo", List.of("actor", "ref")),
    RLOO("rloo", List.of("actor", "ref")),
    REMAX("remax", List.of("actor", "ref")),
    DPO("dpo", List.of("actor", "ref")),
    IPO("ipo", List.of("actor", "ref")),
    GR_DPO("gr-dpo", List.of("actor", "ref")),
    GR_IPO("gr-ipo", List.of("actor", "ref"));

    private final String key;
    private final List<String> requiredModels;

    Algorithm(String key, List<String> requiredModels) {
        this.key = key;
        this.requiredModels = requiredModels;
    }

    /** Model roles that must be given under {@code models:} (the reward comes from a model or a function). */
    public List<String> requiredModels() {
        return requiredModels;
    }

    /** Whether the algorithm scores generated responses (and so needs a reward model or function). */
    public boolean needsReward() {
        return this == PPO || this == GRPO || this == RLOO || this == REMAX;
    }

    /** Whether the algorithm trains on preference pairs (a PREFERENCES dataset: prompt, chosen, rejected, group). */
    public boolean fromPreferences() {
        return this == RW || isPreferenceOptimisation();
    }

    /** DPO, IPO and their group-robust variants: the actor against the reference on preference pairs. */
    public boolean isPreferenceOptimisation() {
        return this == DPO || this == IPO || this == GR_DPO || this == GR_IPO;
    }

    /** GR-DPO and GR-IPO: per-group losses weighted towards the worst group. */
    public boolean isGroupRobust() {
        return this == GR_DPO || this == GR_IPO;
    }

    /** GRPO, RLOO and ReMax: sampled responses, a baseline from the prompt's own samples or greedy answer. */
    public boolean isSampledPolicyGradient() {
        return this == GRPO || this == RLOO || this == REMAX;
    }

    /** The model this algorithm trains (its final model, {@code <output>/final}). */
    public String trainedRole() {
        return this == RW ? "reward" : "actor";
    }

    /** The name in run configs and in the planner ({@code gr-dpo}, ...). */
    public String key() {
        return key;
    }

    /** The algorithm named {@code key}, or null. */
    public static Algorithm byKey(String key) {
        for (Algorithm a : values()) {
            if (a.key.equals(key)) {
                return a;
            }
        }
        return null;
    }

    /** The model role a call runs on: the part of its name before the first underscore (s3d_train: the actor). */
    public static String roleOf(String call) {
        if (call.equals(org.sparkrlhf.planner.graph.Algorithms.S3D_TRAIN)) {
            return "actor"; // the actor's draft trains on the actor's weights
        }
        int underscore = call.indexOf('_');
        return underscore < 0 ? call : call.substring(0, underscore);
    }
}
