package org.sparkrlhf.jobs.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The few lines a run prints at its end: what the held-out figures did from the first evaluation to
 * the last, how long an iteration took, and where the tables and final models are and how to look
 * at them. What a user reads before opening anything else.
 */
final class RunSummary {
    private static final String SECONDS = "seconds/iteration";

    private RunSummary() {
    }

    /**
     * @param summary     the run's figures, held-out evaluations and final models (iterations run here)
     * @param output      the run's output folder
     * @param loopSeconds wall seconds of the run's iterations, table writes included
     * @param rollouts    whether the run has a rollouts table
     */
    static List<String> lines(RunDriver.Summary summary, String output, double loopSeconds, boolean rollouts) {
        List<String> out = new ArrayList<>();
        out.add("summary");
        Map<Integer, Map<String, Double>> evals = summary.evaluations();
        if (evals.size() >= 2) {
            int first = evals.keySet().iterator().next();
            int last = first;
            for (int i : evals.keySet()) last = i;
            StringBuilder b = new StringBuilder("  held-out");
            for (Map.Entry<String, Double> e : evals.get(first).entrySet()) {
                // the run's overall figures; per-group ones (eval/loss/<group>) stay in the table
                if (e.getKey().chars().filter(c -> c == '/').count() != 1) continue;
                Double after = evals.get(last).get(e.getKey());
                if (after == null) continue;
                b.append(String.format(" | %s %.3f -> %.3f", e.getKey().substring("eval/".length()), e.getValue(), after));
            }
            out.add(b + String.format(" (iteration %d -> %d)", first, last));
        }
        List<Double> seconds = summary.series(SECONDS);
        int iterations = seconds.size();
        if (iterations > 0) {
            // the first iteration loads the models: the steady state is from the second on
            List<Double> steady = iterations > 1 ? seconds.subList(1, iterations) : seconds;
            double mean = steady.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
            out.add(String.format("  %.2f s per iteration in calls and hooks (mean of %d from the %s on); "
                            + "%d iteration%s in %.0f s with evaluations, tables and checkpoints", mean, steady.size(),
                    iterations > 1 ? "second" : "first", iterations, iterations == 1 ? "" : "s", loopSeconds));
        }
        out.add("  tables (Delta): " + (rollouts ? RunOutput.rolloutsPath(output) + ", " : "")
                + RunOutput.metricsPath(output) + ", " + RunOutput.plansPath(output));
        for (Map.Entry<String, String> f : summary.finals().entrySet()) {
            out.add("  final " + f.getKey() + ": " + f.getValue() + " (an HF folder: transformers' from_pretrained reads it)");
        }
        out.add("  look at it: bin/spark-rlhf report " + output + "  (one HTML page: curves, timelines, samples),");
        out.add("  or in a notebook: spark.read.format(\"delta\").load(\"" + RunOutput.metricsPath(output) + "\")");
        return out;
    }
}
