package org.sparkrlhf.gpuexec.model;

/**
 * S3D's draft (Zhong and Bharadwaj, "S3D: A Simple and Cost-Effective Self-Speculative Decoding
 * Scheme for Low-Memory GPUs", 2024): the model itself with the layers [skipFrom, skipTo) skipped,
 * predicting {@code draftTokens} future tokens at once from as many appended mask tokens.
 * skipFrom == skipTo skips nothing.
 */
public record S3dConfig(int skipFrom, int skipTo, int draftTokens) {
    public S3dConfig {
        if (skipFrom < 0 || skipTo < skipFrom) {
            throw new IllegalArgumentException("skip range [" + skipFrom + ", " + skipTo + ") must have 0 <= from <= to");
        }
        if (draftTokens < 1) throw new IllegalArgumentException("an S3D draft predicts at least 1 token, got " + draftTokens);
    }

    /** Throws unless the skip range lies inside a model of {@code layers} layers. */
    public void check(int layers) {
        if (skipTo > layers) {
            throw new IllegalArgumentException("skip range [" + skipFrom + ", " + skipTo + ") outside the model's " + layers + " layers");
        }
    }

    public int skippedLayers() {
        return skipTo - skipFrom;
    }

    public boolean skips(int layer) {
        return layer >= skipFrom && layer < skipTo;
    }
}
