package org.sparkrlhf.jobs.config;

import java.util.List;
import java.util.Locale;

/**
 * The training algorithms a run can use, with the model roles each needs and the names of its
 * model function calls (the nodes of its dataflow graph, as ReaL names them).
 */
public enum Algorithm {
    SFT(List.of("actor"), List.of("actor_train")),
    PPO(List.of("actor", "ref", "critic"),
            List.of("actor_gen", "ref_inf", "reward_inf", "critic_inf", "actor_train", "critic_train")),
    GRPO(List.of("actor", "ref"), List.of("actor_gen", "ref_inf", "reward_inf", "actor_train"));

    private final List<String> requiredModels;
    private final List<String> calls;

    Algorithm(List<String> requiredModels, List<String> calls) {
        this.requiredModels = requiredModels;
        this.calls = calls;
    }

    /** Model roles that must be given under {@code models:} (the reward comes from a model or a function). */
    public List<String> requiredModels() {
        return requiredModels;
    }

    /** Whether the algorithm scores generated responses (and so needs a reward model or function). */
    public boolean needsReward() {
        return this != SFT;
    }

    /** The model function calls of one iteration. */
    public List<String> calls() {
        return calls;
    }

    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The model role a call runs on: the part of its name before the first underscore. */
    public static String roleOf(String call) {
        int underscore = call.indexOf('_');
        return underscore < 0 ? call : call.substring(0, underscore);
    }
}
