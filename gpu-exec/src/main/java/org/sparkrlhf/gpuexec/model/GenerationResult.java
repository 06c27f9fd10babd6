package org.sparkrlhf.gpuexec.model;

/**
 * What {@link Generator#generate} produced per sequence: the new tokens (up to and including the
 * first end-of-sequence token, or maxNewTokens of them), whether it stopped at an EOS, and, when
 * asked for, the logits [steps][V] each new token was drawn from.
 */
public record GenerationResult(int[][] tokens, boolean[] stoppedAtEos, float[][][] stepLogits) {
    public int length(int seq) {
        return tokens[seq].length;
    }
}
