package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.PromptRow;

import java.io.Serializable;

/**
 * Scores a response to a prompt. Verifiable tasks compare the response's final answer with the
 * prompt's reference answer. Serializable, so that the RLHF loop can score on executors.
 */
@FunctionalInterface
public interface RewardFunction extends Serializable {
    Reward score(PromptRow prompt, String response);
}
