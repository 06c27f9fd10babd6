package org.sparkrlhf.gpuexec.model;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One S3D training example: the context tokens[0..anchor] and, after it, as many mask tokens as
 * the draft predicts, mask i learning tokens[anchor + 1 + i].
 */
public record S3dExample(int[] tokens, int anchor) {
    public S3dExample {
        if (anchor < 0 || anchor >= tokens.length) {
            throw new IllegalArgumentException("anchor " + anchor + " outside a sequence of " + tokens.length + " tokens");
        }
    }

    /** Whether the sequence holds the k targets after the anchor. */
    public boolean fits(int k) {
        return anchor + k < tokens.length;
    }

    /** n examples at anchors drawn uniformly over the texts' positions that have k targets after them. */
    public static List<S3dExample> sample(List<int[]> texts, int k, int n, SplittableRandom rng) {
        List<int[]> usable = new ArrayList<>();
        for (int[] t : texts) if (t.length > k) usable.add(t);
        if (usable.isEmpty()) throw new IllegalArgumentException("no text is longer than " + k + " tokens");
        List<S3dExample> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int[] t = usable.get(rng.nextInt(usable.size()));
            out.add(new S3dExample(t, rng.nextInt(t.length - k)));
        }
        return out;
    }
}
