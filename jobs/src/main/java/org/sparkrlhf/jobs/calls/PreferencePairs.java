package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.algorithms.SequenceLogprobs;
import org.sparkrlhf.jobs.executor.RankContext;

import java.util.Arrays;

/**
 * The rows of the preference calls: pair i is rows 2i (chosen) and 2i + 1 (rejected), both with the
 * same prompt, so a data-parallel rank and a micro-batch always hold whole pairs. Per-row values
 * interleave chosen and rejected the same way.
 */
final class PreferencePairs {
    private PreferencePairs() {
    }

    /** The number of pairs of these rows; an error unless they are whole pairs sharing their prompt. */
    static int count(int[][] prompts, int[][] responses) {
        if (prompts.length != responses.length) {
            throw new IllegalArgumentException(prompts.length + " prompts and " + responses.length + " responses");
        }
        if (prompts.length % 2 != 0) {
            throw new IllegalArgumentException(prompts.length + " rows are not whole preference pairs (chosen, rejected)");
        }
        for (int i = 0; i < prompts.length; i += 2) {
            if (!Arrays.equals(prompts[i], prompts[i + 1])) {
                throw new IllegalArgumentException("pair " + i / 2 + ": the chosen and the rejected response have "
                        + "different prompts");
            }
        }
        return prompts.length / 2;
    }

    /** The first pair of each of the call's micro-batches and one past the last ({@link MicroBatches}). */
    static int[] microBatchStarts(RankContext context, int pairs) {
        return MicroBatches.starts(context, pairs);
    }

    /** Pairs [from, to) laid out for a causal LM forward. */
    static ResponseBatch batch(int[][] prompts, int[][] responses, int from, int to, int padId) {
        return ResponseBatch.of(Arrays.copyOfRange(prompts, 2 * from, 2 * to),
                Arrays.copyOfRange(responses, 2 * from, 2 * to), padId);
    }

    /** Each row's summed response log-prob from a forward's [B, T - 1] token log-probs. */
    static float[] sums(ResponseBatch batch, float[] tokenLogprobs) {
        return SequenceLogprobs.sums(tokenLogprobs, batch.responseMask(), batch.batch().batch()).sums();
    }

    /** The chosen rows' values (even rows). */
    static float[] chosen(float[] perRow) {
        return every(perRow, 0);
    }

    /** The rejected rows' values (odd rows). */
    static float[] rejected(float[] perRow) {
        return every(perRow, 1);
    }

    /** Per-row values from the pairs' chosen and rejected ones. */
    static float[] rows(float[] chosen, float[] rejected) {
        float[] out = new float[2 * chosen.length];
        for (int i = 0; i < chosen.length; i++) {
            out[2 * i] = chosen[i];
            out[2 * i + 1] = rejected[i];
        }
        return out;
    }

    private static float[] every(float[] perRow, int offset) {
        if (perRow.length % 2 != 0) {
            throw new IllegalArgumentException(perRow.length + " row values are not whole pairs");
        }
        float[] out = new float[perRow.length / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = perRow[2 * i + offset];
        }
        return out;
    }
}
