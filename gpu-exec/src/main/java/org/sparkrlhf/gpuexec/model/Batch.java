package org.sparkrlhf.gpuexec.model;

import java.util.Arrays;

/**
 * Token ids [B, T] and their attention mask [B, T] (1 = a real token, 0 = padding), row-major.
 * Rotary positions count from each row's first real token: position[t] = max(0, t - first),
 * which is cumsum(mask) - 1 on the real tokens of a row whose real tokens are contiguous (left or
 * right padding), and equals Hugging Face's arange for right padding at every position (a reward
 * read at a trailing pad position sees the same position as in transformers).
 */
public record Batch(int batch, int time, int[] ids, int[] mask) {
    public Batch {
        if (batch <= 0 || time <= 0) throw new IllegalArgumentException("batch and time must be positive, got " + batch + " x " + time);
        if (ids.length != batch * time || mask.length != batch * time) {
            throw new IllegalArgumentException("ids and mask must have " + batch + " x " + time + " elements");
        }
        for (int i = 0; i < mask.length; i++) {
            if (mask[i] != 0 && mask[i] != 1) {
                throw new IllegalArgumentException("attention mask at row " + i / time + ", position " + i % time + " is " + mask[i] + ", not 0 or 1");
            }
        }
    }

    /** Sequences of different lengths, right-padded with padId. */
    public static Batch rightPadded(int[][] seqs, int padId) {
        int T = Arrays.stream(seqs).mapToInt(s -> s.length).max().orElse(0);
        int B = seqs.length;
        int[] ids = new int[B * T], mask = new int[B * T];
        Arrays.fill(ids, padId);
        for (int b = 0; b < B; b++) {
            System.arraycopy(seqs[b], 0, ids, b * T, seqs[b].length);
            Arrays.fill(mask, b * T, b * T + seqs[b].length, 1);
        }
        return new Batch(B, T, ids, mask);
    }

    /** Sequences of different lengths, left-padded with padId (the layout of batched generation). */
    public static Batch leftPadded(int[][] seqs, int padId) {
        int T = Arrays.stream(seqs).mapToInt(s -> s.length).max().orElse(0);
        int B = seqs.length;
        int[] ids = new int[B * T], mask = new int[B * T];
        Arrays.fill(ids, padId);
        for (int b = 0; b < B; b++) {
            int off = b * T + T - seqs[b].length;
            System.arraycopy(seqs[b], 0, ids, off, seqs[b].length);
            Arrays.fill(mask, off, b * T + T, 1);
        }
        return new Batch(B, T, ids, mask);
    }

    /** Rows [from, to) of this batch (same time length). */
    public Batch rows(int from, int to) {
        if (from < 0 || to > batch || from > to) throw new IllegalArgumentException("rows " + from + ".." + to + " of a batch of " + batch);
        return new Batch(to - from, time, Arrays.copyOfRange(ids, from * time, to * time), Arrays.copyOfRange(mask, from * time, to * time));
    }

    public int tokens() {
        return batch * time;
    }

    public int[] positions() {
        int[] pos = new int[batch * time];
        for (int b = 0; b < batch; b++) {
            int first = 0;
            while (first < time && mask[b * time + first] == 0) first++;
            if (first == time) first = 0;
            for (int t = 0; t < time; t++) pos[b * time + t] = Math.max(0, t - first);
        }
        return pos;
    }

    /** Next-token targets: targets[b, t] = ids[b, t + 1], and 0 at the last position (never read). */
    public int[] nextTokens() {
        int[] tg = new int[batch * time];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t + 1 < time; t++) tg[b * time + t] = ids[b * time + t + 1];
        }
        return tg;
    }

    /**
     * Per row, the last position whose id is not padId (position 0 if every id is padId; the last
     * position when padId is negative): where transformers' LlamaForSequenceClassification reads
     * its score. It follows the ids, not the mask, as transformers does.
     */
    public int[] lastNonPad(int padId) {
        int[] rows = new int[batch];
        for (int b = 0; b < batch; b++) {
            int last = padId < 0 ? time - 1 : 0;
            if (padId >= 0) for (int t = 0; t < time; t++) if (ids[b * time + t] != padId) last = t;
            rows[b] = last;
        }
        return rows;
    }

    /** Per-position values [B, T] cut to the next-token predictions [B, T - 1] (the last position predicts nothing). */
    public float[] dropLast(float[] perPosition) {
        float[] out = new float[batch * (time - 1)];
        for (int b = 0; b < batch; b++) System.arraycopy(perPosition, b * time, out, b * (time - 1), time - 1);
        return out;
    }

    /** Per-prediction values [B, T - 1] back to positions [B, T], 0 at the last; {@code what} names them in errors. */
    public float[] padLast(float[] perStep, String what) {
        if (perStep.length != batch * (time - 1)) {
            throw new IllegalArgumentException(what + " has " + perStep.length + " values, expected " + batch + " x " + (time - 1));
        }
        float[] out = new float[batch * time];
        for (int b = 0; b < batch; b++) System.arraycopy(perStep, b * (time - 1), out, b * time, time - 1);
        return out;
    }

    /** loss mask for next-token predictions: mask[b, t + 1] for t &lt; T - 1, as [B, T - 1]. */
    public int[] targetMask() {
        int[] m = new int[batch * (time - 1)];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t + 1 < time; t++) m[b * (time - 1) + t] = mask[b * time + t + 1];
        }
        return m;
    }
}
