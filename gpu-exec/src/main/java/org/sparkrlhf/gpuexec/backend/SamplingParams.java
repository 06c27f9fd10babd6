package org.sparkrlhf.gpuexec.backend;

/**
 * How {@link Backend#sample} picks the next token. {@code temperature == 0} is greedy (argmax, the
 * lowest id among equal maxima); otherwise logits are divided by the temperature, then top-k keeps
 * the tokens whose logit is at least the k-th largest ({@code topK == 0}: off), then top-p keeps,
 * in descending probability order (ties: lower id first), each token whose preceding mass is
 * below {@code topP} ({@code topP >= 1}: off), and one token is drawn from what is kept. This is
 * the order and the tie rule of Hugging Face's temperature, top-k and top-p logits warpers.
 */
public record SamplingParams(float temperature, int topK, float topP) {
    public static final SamplingParams GREEDY = new SamplingParams(0f, 0, 1f);

    public SamplingParams {
        if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (topK < 0) throw new IllegalArgumentException("top-k must be >= 0 (0 = off), got " + topK);
        if (!(topP > 0f && topP <= 1f)) throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
    }

    public boolean greedy() {
        return temperature == 0f;
    }
}
