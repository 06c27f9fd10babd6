package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Prompt + response sequences laid out for a causal LM forward: right-padded [B, T] ids, and the
 * response positions in the forward's [B, T - 1] next-token space (response token j of row b is
 * predicted at index b * (T - 1) + promptLength + j - 1).
 */
record ResponseBatch(Batch batch, int[] responseMask, int[] promptLengths, int[] responseLengths) {

    static ResponseBatch of(int[][] prompts, int[][] responses, int padId) {
        int rows = prompts.length;
        int[][] seqs = new int[rows][];
        int[] promptLengths = new int[rows];
        int[] responseLengths = new int[rows];
        for (int b = 0; b < rows; b++) {
            if (prompts[b].length == 0) {
                throw new IllegalArgumentException("row " + b + ": empty prompt");
            }
            seqs[b] = new int[prompts[b].length + responses[b].length];
            System.arraycopy(prompts[b], 0, seqs[b], 0, prompts[b].length);
            System.arraycopy(responses[b], 0, seqs[b], prompts[b].length, responses[b].length);
            promptLengths[b] = prompts[b].length;
            responseLengths[b] = responses[b].length;
        }
        Batch batch = Batch.rightPadded(seqs, padId);
        if (batch.time() < 2) {
            throw new IllegalArgumentException("sequences of one token have no next token to score");
        }
        int steps = batch.time() - 1;
        int[] mask = new int[rows * steps];
        for (int b = 0; b < rows; b++) {
            for (int j = 0; j < responseLengths[b]; j++) {
                mask[b * steps + promptLengths[b] + j - 1] = 1;
            }
        }
        return new ResponseBatch(batch, mask, promptLengths, responseLengths);
    }

    /** Rows [starts[j], starts[j + 1]) as micro-batch j, for each j. */
    static List<ResponseBatch> microBatches(int[][] prompts, int[][] responses, int padId, int[] starts) {
        List<ResponseBatch> out = new ArrayList<>(starts.length - 1);
        for (int j = 0; j + 1 < starts.length; j++) {
            out.add(of(Arrays.copyOfRange(prompts, starts[j], starts[j + 1]),
                    Arrays.copyOfRange(responses, starts[j], starts[j + 1]), padId));
        }
        return out;
    }

    /** The engine's batches of {@code batches}. */
    static List<Batch> inputs(List<ResponseBatch> batches) {
        List<Batch> out = new ArrayList<>(batches.size());
        for (ResponseBatch b : batches) {
            out.add(b.batch());
        }
        return out;
    }

    int steps() {
        return batch.time() - 1;
    }

    /** Row b's response values out of a [B, T - 1] per-token array. */
    float[] response(float[] perToken, int b) {
        float[] out = new float[responseLengths[b]];
        System.arraycopy(perToken, b * steps() + promptLengths[b] - 1, out, 0, out.length);
        return out;
    }

    /** Per-row response values spread into the [B, T - 1] layout (0 elsewhere). */
    float[] spread(float[][] perRow) {
        float[] out = new float[batch.batch() * steps()];
        for (int b = 0; b < perRow.length; b++) {
            if (perRow[b].length != responseLengths[b]) {
                throw new IllegalArgumentException("row " + b + ": " + perRow[b].length + " values for "
                        + responseLengths[b] + " response tokens");
            }
            System.arraycopy(perRow[b], 0, out, b * steps() + promptLengths[b] - 1, perRow[b].length);
        }
        return out;
    }
}
