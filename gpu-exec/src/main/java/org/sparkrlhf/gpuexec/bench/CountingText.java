package org.sparkrlhf.gpuexec.bench;

import java.util.SplittableRandom;

/**
 * A character-level text task whose continuations are predictable: consecutive decimal numbers
 * separated by spaces ("417 418 419 ..."), the kind of text (lists, code, counters) where drafted
 * tokens are often right. Vocabulary: 0 pad, 1 bos, 2 eos, 3 space, 4..13 the digits.
 */
final class CountingText {
    static final int VOCAB = 16, PAD = 0, BOS = 1, SPACE = 3;

    private CountingText() {
    }

    /** bos, then numbers from a random start below 10000, cut to {@code length} tokens. */
    static int[] sample(SplittableRandom rng, int length) {
        int[] t = new int[length];
        t[0] = BOS;
        int n = rng.nextInt(10000), i = 1;
        while (i < length) {
            String s = Integer.toString(n++);
            for (int c = 0; c < s.length() && i < length; c++) t[i++] = 4 + (s.charAt(c) - '0');
            if (i < length) t[i++] = SPACE;
        }
        return t;
    }

    static String decode(int[] ids) {
        StringBuilder b = new StringBuilder();
        for (int id : ids) b.append(id == SPACE ? " " : id >= 4 && id < 14 ? Character.toString('0' + id - 4) : "<" + id + ">");
        return b.toString();
    }
}
