package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

class RunSummaryTest {
    @Test
    void heldOutFiguresBeforeAndAfterSecondsPerIterationAndWhereToLook() {
        Map<Integer, Map<String, Double>> figures = new LinkedHashMap<>();
        figures.put(1, Map.of("seconds/iteration", 3.0));
        figures.put(2, Map.of("seconds/iteration", 0.5));
        figures.put(3, Map.of("seconds/iteration", 0.75));
        Map<Integer, Map<String, Double>> evals = new LinkedHashMap<>();
        Map<String, Double> before = new LinkedHashMap<>();
        before.put("eval/reward_mean", 0.25);
        before.put("eval/loss/add", 1.0);
        evals.put(0, before);
        evals.put(2, Map.of("eval/reward_mean", 0.5));
        evals.put(3, Map.of("eval/reward_mean", 0.75, "eval/loss/add", 0.5));
        RunDriver.Summary summary = new RunDriver.Summary(figures, evals, Map.of("actor", "file:/out/final"));
        List<String> lines = RunSummary.lines(summary, "file:/out", 12.4, true);
        assertEquals(List.of(
                "summary",
                "  held-out | reward_mean 0.250 -> 0.750 (iteration 0 -> 3)",
                "  0.63 s per iteration in calls and hooks (mean of 2 from the second on); 3 iterations in 12 s with "
                        + "evaluations, tables and checkpoints",
                "  tables (Delta): file:/out/tables/rollouts, file:/out/tables/metrics, file:/out/tables/plans",
                "  final actor: file:/out/final (an HF folder: transformers' from_pretrained reads it)",
                "  look at it: bin/spark-rlhf report file:/out  (one HTML page: curves, timelines, samples),",
                "  or in a notebook: spark.read.format(\"delta\").load(\"file:/out/tables/metrics\")"), lines);
    }

    @Test
    void aRunWithoutEvaluationsOrRolloutsSaysWhatItHas() {
        RunDriver.Summary summary = new RunDriver.Summary(Map.of(1, Map.of("seconds/iteration", 2.0)), Map.of(), Map.of());
        List<String> lines = RunSummary.lines(summary, "file:/o", 2.0, false);
        assertEquals("  2.00 s per iteration in calls and hooks (mean of 1 from the first on); 1 iteration in 2 s with "
                + "evaluations, tables and checkpoints", lines.get(1));
        assertEquals("  tables (Delta): file:/o/tables/metrics, file:/o/tables/plans", lines.get(2));
    }
}
