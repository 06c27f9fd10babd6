package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.SpeculativeStats;

import java.io.Serializable;

/**
 * What S3D speculative decoding did in a call, summed over its ranks and micro-batches: sequence
 * steps, drafted and accepted draft tokens, and the seconds of the draft and verify forwards (summed
 * over ranks: device seconds, not wall time).
 */
public record SpeculativeFigures(long sequenceSteps, long draftedTokens, long acceptedTokens, double draftSeconds,
                                 double verifySeconds) implements Serializable {
    public static final SpeculativeFigures NONE = new SpeculativeFigures(0, 0, 0, 0, 0);

    public static SpeculativeFigures of(SpeculativeStats s) {
        return new SpeculativeFigures(s.sequenceSteps(), s.draftedTokens(), s.acceptedTokens(), s.draftSeconds(),
                s.verifySeconds());
    }

    public SpeculativeFigures plus(SpeculativeFigures o) {
        return new SpeculativeFigures(sequenceSteps + o.sequenceSteps, draftedTokens + o.draftedTokens,
                acceptedTokens + o.acceptedTokens, draftSeconds + o.draftSeconds, verifySeconds + o.verifySeconds);
    }

    /** Accepted over drafted tokens. */
    public double acceptance() {
        return draftedTokens == 0 ? 0 : (double) acceptedTokens / draftedTokens;
    }

    /** Mean tokens a sequence gains per step (its accepted drafts and the verifier's token), as SpeculativeStats'. */
    public double tokensPerStep() {
        return sequenceSteps == 0 ? 0 : (double) (acceptedTokens + sequenceSteps) / sequenceSteps;
    }
}
