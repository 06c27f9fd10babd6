package org.sparkrlhf.gpuexec.model;

/**
 * What a speculative generation did: verification forwards (one per step of the whole batch),
 * sequence steps (a live sequence in one step), drafted and accepted draft tokens (over live
 * sequences), the sequence steps that rejected a draft, and the seconds spent in draft and in
 * verify forwards (including their logits' download and the host-side acceptance).
 */
public record SpeculativeStats(long verifySteps, long sequenceSteps, long draftedTokens, long acceptedTokens,
                               long rejectingSteps, double draftSeconds, double verifySeconds) {
    /** The fraction of drafted tokens accepted. */
    public double acceptanceRate() {
        return draftedTokens == 0 ? 0 : (double) acceptedTokens / draftedTokens;
    }

    /**
     * The acceptance of a draft token given that the ones before it were accepted: accepted over
     * the drafts verified up to each step's first rejection (the estimate of S3dSpeedup's alpha).
     */
    public double conditionalAcceptance() {
        long verified = acceptedTokens + rejectingSteps;
        return verified == 0 ? 0 : (double) acceptedTokens / verified;
    }

    /** Mean tokens a sequence gains per step: its accepted drafts plus the verifier's own token. */
    public double tokensPerStep() {
        return sequenceSteps == 0 ? 0 : (double) (acceptedTokens + sequenceSteps) / sequenceSteps;
    }
}
