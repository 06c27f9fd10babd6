package org.sparkrlhf.jobs.train;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The plan's estimate against the measured seconds, per call and for the iteration: the mean of the
 * measured seconds from the run's second iteration on (the first pays the JIT warm-up, model loads and
 * the first connections, which the estimate does not model), and estimated / measured.
 */
final class EstimateCheck {
    static final String ITERATION = "iteration";

    private final Map<String, Double> estimated;
    private final int firstCounted;
    private final Map<String, double[]> sums = new LinkedHashMap<>();

    /** {@code estimated}: seconds per call, the iteration's under {@link #ITERATION}; counts from {@code firstIteration + 1}. */
    EstimateCheck(Map<String, Double> estimated, int firstIteration) {
        this.estimated = new LinkedHashMap<>(estimated);
        this.firstCounted = firstIteration + 1;
    }

    void add(int iteration, Map<String, Double> measured) {
        if (iteration < firstCounted) {
            return;
        }
        measured.forEach((call, s) -> {
            if (estimated.containsKey(call) && s != null) {
                double[] a = sums.computeIfAbsent(call, c -> new double[2]);
                a[0] += s;
                a[1]++;
            }
        });
    }

    /** {@code est/measured: actor_gen 0.612/0.181 s = 3.38, ...}; empty before any counted iteration. */
    String line() {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Double> e : estimated.entrySet()) {
            double[] a = sums.get(e.getKey());
            if (a == null || a[1] == 0) {
                continue;
            }
            double mean = a[0] / a[1];
            sb.append(sb.length() == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.3f/%.3f s = %.2f",
                    e.getKey(), e.getValue(), mean, e.getValue() / mean));
        }
        if (sb.length() == 0) {
            return "";
        }
        int n = (int) sums.values().iterator().next()[1];
        return String.format(Locale.ROOT, "estimated/measured (mean of %d iteration%s from %d on): ", n,
                n == 1 ? "" : "s", firstCounted) + sb;
    }
}
