package org.sparkrlhf.jobs.report;

import java.util.ArrayList;
import java.util.List;

/**
 * A linear axis over [min, max] widened to round ticks (steps of 1, 2 or 5 times a power of ten),
 * mapped onto pixels [from, to].
 */
record Axis(double min, double max, double step, double from, double to) {

    /** An axis covering {@code lo..hi} with about {@code ticks} ticks. */
    static Axis covering(double lo, double hi, int ticks, double from, double to) {
        if (!(hi > lo)) {
            double pad = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            lo -= pad;
            hi += pad;
        }
        double raw = (hi - lo) / ticks;
        double power = Math.pow(10, Math.floor(Math.log10(raw)));
        double step = power * (raw / power <= 1 ? 1 : raw / power <= 2 ? 2 : raw / power <= 5 ? 5 : 10);
        return new Axis(Math.floor(lo / step) * step, Math.ceil(hi / step) * step, step, from, to);
    }

    /** An axis of whole numbers (iterations): steps of at least 1. */
    static Axis wholeNumbers(double lo, double hi, int ticks, double from, double to) {
        Axis a = covering(lo, hi, ticks, from, to);
        return a.step >= 1 ? a : new Axis(Math.floor(lo), Math.max(Math.ceil(hi), Math.floor(lo) + 1), 1, from, to);
    }

    double pixel(double v) {
        return from + (v - min) / (max - min) * (to - from);
    }

    List<Double> ticks() {
        List<Double> out = new ArrayList<>();
        long n = Math.round((max - min) / step);
        for (long i = 0; i <= n; i++) {
            out.add(min + i * step);
        }
        return out;
    }
}
