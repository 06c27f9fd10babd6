package org.sparkrlhf.datasets.tables;

import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;

/**
 * One generated response of an RLHF iteration, as the rollouts table stores it (without run id and
 * iteration, which the writer adds). Per-token arrays are over the response tokens: entry t belongs
 * to {@code responseTokens[t]}. Nullable: group, refLogprobs, values (no critic), advantages,
 * returns, tokenRewards, rewardDetail, kl.
 *
 * @param sample       the response's index among the samples of its prompt in the iteration, from 0
 *                     (a prompt drawn twice into one batch, at an epoch's end, continues the count)
 * @param reward       the sequence reward: the reward function's or the reward model's score
 * @param tokenRewards per-token rewards as the algorithm shaped them (e.g. KL penalty + final score)
 * @param kl           the sequence's KL estimate against the reference model
 * @param policyVersion the version (optimizer steps) of the policy that generated the response
 */
public record RolloutRow(String promptId, int sample, String group, String promptText, String responseText,
                         int[] promptTokens, int[] responseTokens, float[] logprobs, float[] refLogprobs,
                         float[] values, float[] advantages, float[] returns, float[] tokenRewards,
                         double reward, String rewardDetail, Double kl, FinishReason finishReason,
                         long policyVersion, Instant generatedAt) {
    public RolloutRow {
        Objects.requireNonNull(promptId, "promptId");
        if (sample < 0) throw new IllegalArgumentException("sample " + sample + " is negative");
        Objects.requireNonNull(promptText, "promptText");
        Objects.requireNonNull(responseText, "responseText");
        Objects.requireNonNull(promptTokens, "promptTokens");
        Objects.requireNonNull(responseTokens, "responseTokens");
        Objects.requireNonNull(logprobs, "logprobs");
        Objects.requireNonNull(finishReason, "finishReason");
        Objects.requireNonNull(generatedAt, "generatedAt");
    }

    // Records compare arrays by reference; rows compare by content.
    @Override
    public boolean equals(Object o) {
        return o instanceof RolloutRow r
                && promptId.equals(r.promptId) && sample == r.sample && Objects.equals(group, r.group)
                && promptText.equals(r.promptText) && responseText.equals(r.responseText)
                && Arrays.equals(promptTokens, r.promptTokens) && Arrays.equals(responseTokens, r.responseTokens)
                && Arrays.equals(logprobs, r.logprobs) && Arrays.equals(refLogprobs, r.refLogprobs)
                && Arrays.equals(values, r.values) && Arrays.equals(advantages, r.advantages)
                && Arrays.equals(returns, r.returns) && Arrays.equals(tokenRewards, r.tokenRewards)
                && Double.compare(reward, r.reward) == 0 && Objects.equals(rewardDetail, r.rewardDetail)
                && Objects.equals(kl, r.kl) && finishReason == r.finishReason
                && policyVersion == r.policyVersion && generatedAt.equals(r.generatedAt);
    }

    @Override
    public int hashCode() {
        return Objects.hash(promptId, sample, responseText, Arrays.hashCode(responseTokens), policyVersion);
    }

    @Override
    public String toString() {
        return "RolloutRow[promptId=" + promptId + ", sample=" + sample + ", group=" + group + ", response=" + responseText
                + ", responseTokens=" + Arrays.toString(responseTokens) + ", reward=" + reward
                + ", finishReason=" + finishReason + ", policyVersion=" + policyVersion + "]";
    }
}
