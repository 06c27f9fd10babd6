package org.sparkrlhf.jobs.report;

import java.util.List;

/**
 * What the report shows of one run, read from its Delta tables.
 *
 * @param curves          every metric of the run but the timeline, one series per name
 * @param responseLengths the rollouts' response lengths per iteration: min, mean and max (empty
 *                        without a rollouts table)
 * @param timelineIteration the iteration whose schedule {@code measured} and {@code estimated} show
 * @param measured        when each call and hook ran ({@code timeline/<name>/start|end} metrics)
 * @param estimated       the plan's schedule of the same iteration (the plans table), empty without one
 * @param estimatedSeconds the plan's estimate of an iteration, null without one
 * @param measuredSeconds the measured seconds of that iteration, null without a plans row
 * @param samplesIteration the last iteration in the rollouts table, -1 without one
 */
public record RunReport(String runId, String output, List<Series> curves, List<Series> responseLengths,
                        long timelineIteration, List<Span> measured, List<Span> estimated, Double estimatedSeconds,
                        Double measuredSeconds, long samplesIteration, List<Sample> best, List<Sample> worst) {
    public RunReport {
        curves = List.copyOf(curves);
        responseLengths = List.copyOf(responseLengths);
        measured = List.copyOf(measured);
        estimated = List.copyOf(estimated);
        best = List.copyOf(best);
        worst = List.copyOf(worst);
    }

    /** The curve of a metric, or null when the run has none of that name. */
    public Series curve(String name) {
        for (Series s : curves) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        return null;
    }
}
