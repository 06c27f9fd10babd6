package org.sparkrlhf.jobs.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Central finite differences of a float loss, against an analytic gradient. */
final class FiniteDifferences {
    private FiniteDifferences() {
    }

    interface Loss {
        float of(float[] x);
    }

    static void check(float[] x, float[] analytic, Loss loss) {
        float h = 1e-2f;
        for (int i = 0; i < x.length; i++) {
            float[] plus = x.clone();
            float[] minus = x.clone();
            plus[i] += h;
            minus[i] -= h;
            double fd = ((double) loss.of(plus) - loss.of(minus)) / (2 * h);
            assertEquals(fd, analytic[i], 1e-4 + 1e-3 * Math.abs(fd), "entry " + i);
        }
    }
}
