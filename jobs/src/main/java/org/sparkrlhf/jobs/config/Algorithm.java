package org.sparkrlhf.jobs.config;

import java.util.List;
import java.util.Locale;

/**
 * The training algorithms a run can use, with the model roles each needs. Their calls and hooks are
 * their dataflow graphs in the planner ({@code Algorithms.of}), the one description of each.
 */
public enum Algorithm {
    SFT(List.of("actor")),
    PPO(List.of("actor", "ref", "critic")),
    GRPO(List.of("actor", "ref"));

    private final List<String> requiredModels;

    Algorithm(List<String> requiredModels) {
        this.requiredModels = requiredModels;
    }

    /** Model roles that must be given under {@code models:} (the reward comes from a model or a function). */
    public List<String> requiredModels() {
        return requiredModels;
    }

    /** Whether the algorithm scores generated responses (and so needs a reward model or function). */
    public boolean needsReward() {
        return this != SFT;
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
