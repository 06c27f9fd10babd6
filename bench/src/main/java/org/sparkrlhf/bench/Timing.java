package org.sparkrlhf.bench;

import java.util.Arrays;

/** Median wall time of repeated runs after warm-up runs. */
final class Timing {
    private Timing() {
    }

    static double medianSeconds(int warmup, int iterations, Runnable body) {
        for (int i = 0; i < warmup; i++) body.run();
        double[] t = new double[iterations];
        for (int i = 0; i < iterations; i++) {
            long t0 = System.nanoTime();
            body.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return iterations % 2 == 1 ? t[iterations / 2] : (t[iterations / 2 - 1] + t[iterations / 2]) / 2;
    }
}
