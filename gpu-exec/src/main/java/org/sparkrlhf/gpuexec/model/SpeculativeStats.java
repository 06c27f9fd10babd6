package org.sparkrlhf.gpuexec.model;

/**
 * What a speculative generation did: verification forwards (one per step of the whole batch),
 * sequence steps (a live sequence in one step), drafted and accepted draft tokens (over live
 * sequences), and the seconds spent in draft and in verify forwards (including their logits'
 * download and the host-side acceptance).
 */
public record SpeculativeStats(long verifySteps, long sequenceSteps, long draftedTokens, long acceptedTokens,
                               double draftSeconds, double verifySeconds) {
    /** The fraction of drafted tokens accepted. */
    public double acceptanceRate() {
        return draftedTokens == 0 ? 0 : (double) acceptedTokens / draftedTokens;
    }

    /** Mean tokens a sequence gains per step: its accepted drafts plus the verifier's own token. */
    public double tokensPerStep() {
        return sequenceSteps == 0 ? 0 : (double) (acceptedTokens + sequenceSteps) / sequenceSteps;
    }
}
