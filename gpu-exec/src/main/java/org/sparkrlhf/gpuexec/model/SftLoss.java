package org.sparkrlhf.gpuexec.model;

/**
 * Supervised fine-tuning loss over a model's per-token logprobs: the mean over the target mask
 * (mask[:, 1:]) of -logprob, and its gradient per token for {@link LlamaModel#backward}.
 */
public final class SftLoss {
    /** The loss value and dLoss/dLogprob [B, T - 1]. */
    public record Result(float loss, float[] dLogprobs, int tokens) {
    }

    private SftLoss() {
    }

    /** Mean over this batch's target tokens. */
    public static Result of(Batch batch, TokenStats stats) {
        int count = 0;
        for (int m : batch.targetMask()) count += m;
        return of(batch, stats, count);
    }

    /**
     * Sum of -logprob over this batch's target tokens divided by {@code denominator}: with
     * micro-batches, pass the target token count of the whole batch so that the accumulated
     * gradients are those of the whole batch's mean.
     */
    public static Result of(Batch batch, TokenStats stats, int denominator) {
        return of(batch.targetMask(), stats, denominator);
    }

    /**
     * The targets that complete a prompt: {@link Batch#targetMask()} without the predictions of
     * the first {@code promptTokens[b]} tokens of row b (its bos and prompt), which are the task's
     * input, not what the model is taught to produce.
     */
    public static int[] completionMask(Batch batch, int[] promptTokens) {
        if (promptTokens.length != batch.batch()) throw new IllegalArgumentException("one prompt length per row");
        int[] mask = batch.targetMask();
        int targets = batch.time() - 1;
        for (int b = 0; b < batch.batch(); b++) {
            // target t predicts token t + 1
            for (int t = 0; t + 1 < promptTokens[b] && t < targets; t++) mask[b * targets + t] = 0;
        }
        return mask;
    }

    /** As {@link #of(Batch, TokenStats, int)} over the targets {@code mask} [B, T - 1] selects. */
    public static Result of(int[] mask, TokenStats stats, int denominator) {
        if (mask.length != stats.logprobs().length) throw new IllegalArgumentException("stats do not match the batch");
        float[] d = new float[mask.length];
        double sum = 0;
        int count = 0;
        float scale = denominator > 0 ? 1f / denominator : 0f;
        for (int i = 0; i < mask.length; i++) {
            if (mask[i] == 0) continue;
            sum -= stats.logprobs()[i];
            d[i] = -scale;
            count++;
        }
        return new Result(denominator > 0 ? (float) (sum / denominator) : 0f, d, count);
    }
}
