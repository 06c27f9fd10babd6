package org.sparkrlhf.jobs.graph;

/**
 * The value of {@code rewards}: each row's score as the reward model or the reward function gave it
 * (unclipped; the algorithm clips where it turns scores into advantages), and the reward function's
 * verdict of each row ({@code correct}, ..., or null under a reward model).
 */
public record Scores(float[] values, String[] details) {
    public Scores {
        if (values.length != details.length) {
            throw new IllegalArgumentException(values.length + " scores, " + details.length + " verdicts");
        }
    }

    /** The scores clipped to [-clip, clip]. */
    public float[] clipped(double clip) {
        float[] out = new float[values.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) Math.max(-clip, Math.min(clip, values[i]));
        }
        return out;
    }
}
