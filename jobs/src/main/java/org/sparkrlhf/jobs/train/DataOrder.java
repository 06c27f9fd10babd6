package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.checkpoint.RunCheckpoints;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * The order in which a run reads its examples: epoch e is a permutation of 0..n-1 drawn from
 * (seed, e) alone, and the position (epoch, offset) says how many examples were consumed. A run
 * resumed at a saved position reads exactly the examples the uninterrupted run would have read.
 */
public final class DataOrder {
    private final int size;
    private final long seed;
    private long epoch;
    private long offset;
    private int[] permutation;

    public DataOrder(int size, long seed, long epoch, long offset) {
        if (size <= 0) {
            throw new IllegalArgumentException("the dataset is empty");
        }
        if (offset < 0 || offset >= size) {
            throw new IllegalArgumentException("data offset " + offset + " outside 0.." + (size - 1));
        }
        this.size = size;
        this.seed = seed;
        this.epoch = epoch;
        this.offset = offset;
        this.permutation = permutation(size, seed, epoch);
    }

    /** A run's order from the start, or from the position a resumed checkpoint saved. */
    public static DataOrder startingAt(int size, long seed, Optional<RunCheckpoints.Checkpoint> resumed) {
        return resumed.map(c -> new DataOrder(size, seed, c.state().dataEpoch(), c.state().dataOffset()))
                .orElseGet(() -> new DataOrder(size, seed, 0, 0));
    }

    /** Epoch e's order: Fisher-Yates with a generator seeded by the run's seed and e. */
    static int[] permutation(int size, long seed, long epoch) {
        int[] p = new int[size];
        for (int i = 0; i < size; i++) {
            p[i] = i;
        }
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch);
        for (int i = size - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** The next {@code count} example indices, crossing into the next epoch when this one runs out. */
    public List<Integer> next(int count) {
        List<Integer> out = new ArrayList<>(count);
        for (int k = 0; k < count; k++) {
            out.add(permutation[(int) offset]);
            offset++;
            if (offset == size) {
                epoch++;
                offset = 0;
                permutation = permutation(size, seed, epoch);
            }
        }
        return out;
    }

    public long epoch() {
        return epoch;
    }

    public long offset() {
        return offset;
    }
}
