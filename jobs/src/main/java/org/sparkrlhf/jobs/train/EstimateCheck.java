package org.sparkrlhf.jobs.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The plan's estimate against the measured seconds, per call and for the iteration: the mean of the
 * measured seconds from the run's second iteration on (the first pays the JIT warm-up, model loads and
 * the first connections, which the estimate does not model), and estimated / measured; from four
 * counted iterations on, also the mean of the last half of them. The JIT keeps compiling for a while
 * after the first iteration (on two cores its compiler threads took about a core for the first 30 s
 * of the GRPO example, and the calls ran at half speed meanwhile): the last half is the steady state
 * the estimate is of, the whole mean says what the run paid. The last half's median is shown beside
 * its mean: work beside the calls (the tables' commits, about a second of the driver's CPU each, and
 * their tasks, which hold executor slots a call then waits for) makes a few calls several times
 * slower, and the median is the call as the estimate prices it (the embedded PPO example at batch
 * 64: ref_inf's median 22 ms, its mean 35 ms, its slowest 304 ms).
 */
final class EstimateCheck {
    static final String ITERATION = "iteration";
    /** Counted iterations from which the last half is shown too. */
    static final int RECENT_FROM = 4;

    private final Map<String, Double> estimated;
    private final int firstCounted;
    private final Map<String, List<Double>> measured = new LinkedHashMap<>();
    private int counted;

    /** {@code estimated}: seconds per call, the iteration's under {@link #ITERATION}; counts from {@code firstIteration + 1}. */
    EstimateCheck(Map<String, Double> estimated, int firstIteration) {
        this.estimated = new LinkedHashMap<>(estimated);
        this.firstCounted = firstIteration + 1;
    }

    void add(int iteration, Map<String, Double> seconds) {
        if (iteration < firstCounted) {
            return;
        }
        counted++;
        seconds.forEach((call, s) -> {
            if (estimated.containsKey(call) && s != null) {
                measured.computeIfAbsent(call, c -> new ArrayList<>()).add(s);
            }
        });
    }

    /**
     * {@code estimated/measured (mean of 9 iterations from 2 on | of the last 4, from 7): actor_gen
     * 0.612/0.181 s = 3.38 | 0.170 s = 3.60, ...}; empty before any counted iteration.
     */
    String line() {
        StringBuilder sb = new StringBuilder();
        int recent = counted >= RECENT_FROM ? counted / 2 : 0;
        for (Map.Entry<String, Double> e : estimated.entrySet()) {
            List<Double> m = measured.get(e.getKey());
            if (m == null || m.isEmpty()) {
                continue;
            }
            double mean = mean(m, m.size());
            sb.append(sb.length() == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.3f/%.3f s = %.2f",
                    e.getKey(), e.getValue(), mean, e.getValue() / mean));
            if (recent > 0 && m.size() >= recent) {
                double last = mean(m, recent);
                double median = median(m, recent);
                sb.append(String.format(Locale.ROOT, " | %.3f s = %.2f, median %.3f s = %.2f", last, e.getValue() / last,
                        median, e.getValue() / median));
            }
        }
        if (sb.length() == 0) {
            return "";
        }
        String window = recent > 0 ? String.format(Locale.ROOT, " | mean and median of the last %d, from %d", recent,
                firstCounted + counted - recent) : "";
        return String.format(Locale.ROOT, "estimated/measured (mean of %d iteration%s from %d on%s): ", counted,
                counted == 1 ? "" : "s", firstCounted, window) + sb;
    }

    /** The median of the last {@code n} values (of an even count, the mean of the middle two). */
    private static double median(List<Double> v, int n) {
        double[] last = new double[n];
        for (int i = 0; i < n; i++) {
            last[i] = v.get(v.size() - n + i);
        }
        java.util.Arrays.sort(last);
        return n % 2 == 1 ? last[n / 2] : (last[n / 2 - 1] + last[n / 2]) / 2;
    }

    /** The mean of the last {@code n} values. */
    private static double mean(List<Double> v, int n) {
        double s = 0;
        for (int i = v.size() - n; i < v.size(); i++) {
            s += v.get(i);
        }
        return s / n;
    }
}
