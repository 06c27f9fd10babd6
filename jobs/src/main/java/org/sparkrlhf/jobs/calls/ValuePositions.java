package org.sparkrlhf.jobs.calls;

/**
 * Where a response token's value sits in a critic's [B, T] output: the value of response token j
 * of row b is the critic's value at the position that predicts it, b * T + promptLength + j - 1
 * (the state before the action, as the token's logprob in the [B, T - 1] next-token space).
 */
final class ValuePositions {
    private ValuePositions() {
    }

    /** Row b's response values out of the critic's [B, T] values. */
    static float[] response(ResponseBatch batch, float[] values, int b) {
        int time = batch.batch().time();
        float[] out = new float[batch.responseLengths()[b]];
        System.arraycopy(values, b * time + batch.promptLengths()[b] - 1, out, 0, out.length);
        return out;
    }

    /** Per-row response values spread into the [B, T] layout (0 elsewhere). */
    static float[] spread(ResponseBatch batch, float[][] perRow) {
        int time = batch.batch().time();
        float[] out = new float[batch.batch().batch() * time];
        for (int b = 0; b < perRow.length; b++) {
            if (perRow[b].length != batch.responseLengths()[b]) {
                throw new IllegalArgumentException("row " + b + ": " + perRow[b].length + " values for "
                        + batch.responseLengths()[b] + " response tokens");
            }
            System.arraycopy(perRow[b], 0, out, b * time + batch.promptLengths()[b] - 1, perRow[b].length);
        }
        return out;
    }

    /** 1 at the response tokens' value positions of the [B, T] layout. */
    static int[] mask(ResponseBatch batch) {
        int time = batch.batch().time();
        int[] mask = new int[batch.batch().batch() * time];
        for (int b = 0; b < batch.responseLengths().length; b++) {
            int from = b * time + batch.promptLengths()[b] - 1;
            for (int j = 0; j < batch.responseLengths()[b]; j++) {
                mask[from + j] = 1;
            }
        }
        return mask;
    }
}
