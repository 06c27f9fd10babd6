package org.sparkrlhf.jobs.report;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.FinishReason;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The report's reading of a run's tables, against tables written by hand with known figures. */
class RunTablesTest {
    private static final Instant T0 = Instant.parse("2026-01-01T00:00:00Z");
    private static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("RunTablesTest", 2);
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    private static List<MetricRow> metrics(Instant t, Object... nameValue) {
        List<MetricRow> out = new ArrayList<>();
        for (int i = 0; i < nameValue.length; i += 2) {
            out.add(new MetricRow((String) nameValue[i], (Double) nameValue[i + 1], t));
        }
        return out;
    }

    private static RolloutRow rollout(String prompt, int sample, double reward, int length) {
        int[] response = new int[length];
        float[] logprobs = new float[length];
        return new RolloutRow(prompt, sample, null, "What is " + prompt + "?", "answer " + prompt + "/" + sample,
                new int[]{1, 2}, response, logprobs, null, null, null, null, null, reward,
                reward == 1.0 ? "correct" : "wrong", null, FinishReason.STOP, 0, T0);
    }

    @Test
    void readsCurvesTheTimelinesAndTheBestAndWorstSamplesOfTheNewestRun(@TempDir Path dir) {
        String tables = dir.resolve("tables").toString();
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, tables + "/metrics");
        // an older run in the same tables: not the one reported by default
        metrics.appendIteration("old", 1, metrics(T0, "reward/mean", 0.125));
        Instant t = T0.plusSeconds(60);
        metrics.appendIteration("r1", 0, metrics(t, "eval/reward_mean", 0.25));
        metrics.appendIteration("r1", 1, metrics(t, "reward/mean", 0.5, "kl/k3", Double.NaN,
                "timeline/actor_gen/start", 0.1, "timeline/actor_gen/end", 2.1));
        metrics.appendIteration("r1", 2, metrics(t, "reward/mean", 0.75, "kl/k3", 0.01, "eval/reward_mean", 0.5,
                "timeline/actor_gen/start", 0.0, "timeline/actor_gen/end", 1.5,
                "timeline/rewards/start", 1.55, "timeline/rewards/end", 1.58,
                "timeline/ref_inf/start", 1.6, "timeline/ref_inf/end", 2.0));

        IterationTable<PlanRow> plans = IterationTable.plans(spark, tables + "/plans");
        for (long i = 1; i <= 2; i++) {
            plans.appendIteration("r1", i, List.of(new PlanRow("{}", List.of(
                    new PlanRow.CallTiming("actor_gen", 1.2, 1.5 * i, 0.0, 1.2),
                    new PlanRow.CallTiming("ref_inf", 0.3, 0.4, 1.2, 1.5)), 1.5, 2.0 * i, t)));
        }

        IterationTable<RolloutRow> rollouts = IterationTable.rollouts(spark, tables + "/rollouts");
        rollouts.appendIteration("r1", 1, List.of(rollout("p1", 0, 0.0, 2), rollout("p1", 1, 1.0, 4)));
        rollouts.appendIteration("r1", 2, List.of(rollout("p1", 0, 1.0, 3), rollout("p1", 1, 0.0, 2),
                rollout("p2", 0, 1.0, 1), rollout("p2", 1, 0.5, 4)));

        RunReport r = new RunTables(spark, dir.toString()).read(null);
        assertEquals("r1", r.runId());
        assertEquals(List.of("eval/reward_mean", "kl/k3", "reward/mean"), r.curves().stream().map(Series::name).toList());
        assertEquals(List.of(new Point(1, 0.5), new Point(2, 0.75)), r.curve("reward/mean").points());
        assertEquals(List.of(new Point(0, 0.25), new Point(2, 0.5)), r.curve("eval/reward_mean").points());
        assertTrue(Double.isNaN(r.curve("kl/k3").points().get(0).y()), "a NaN figure is kept");

        assertEquals(List.of(new Series("max", List.of(new Point(1, 4), new Point(2, 4))),
                new Series("mean", List.of(new Point(1, 3), new Point(2, 2.5))),
                new Series("min", List.of(new Point(1, 2), new Point(2, 1)))), r.responseLengths());

        assertEquals(2, r.timelineIteration());
        assertEquals(List.of(new Span("actor_gen", 0.0, 1.5), new Span("rewards", 1.55, 1.58), new Span("ref_inf", 1.6, 2.0)),
                r.measured());
        assertEquals(List.of(new Span("actor_gen", 0.0, 1.2), new Span("ref_inf", 1.2, 1.5)), r.estimated());
        assertEquals(1.5, r.estimatedSeconds());
        assertEquals(4.0, r.measuredSeconds());

        assertEquals(2, r.samplesIteration());
        assertEquals(List.of("r1/2/p1/0", "r1/2/p2/0", "r1/2/p2/1", "r1/2/p1/1"), r.best().stream().map(Sample::rowId).toList());
        assertEquals(List.of("r1/2/p1/1", "r1/2/p2/1", "r1/2/p1/0", "r1/2/p2/0"), r.worst().stream().map(Sample::rowId).toList());
        assertEquals(new Sample("r1/2/p2/1", "What is p2?", "answer p2/1", 0.5, "wrong", 4, "stop"), r.worst().get(1));

        RunReport old = new RunTables(spark, dir.toString()).read("old");
        assertEquals(List.of(new Point(1, 0.125)), old.curve("reward/mean").points());
        assertEquals(-1, old.timelineIteration());
        assertEquals(-1, old.samplesIteration());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RunTables(spark, dir.toString()).read("nope"));
        assertTrue(e.getMessage().endsWith("no metrics of run 'nope'; it holds runs [old, r1]"), e.getMessage());
    }

    @Test
    void aFolderWithoutTablesOrWithOldTablesIsAClearError(@TempDir Path dir) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RunTables(spark, dir.toString()).read(null));
        assertTrue(e.getMessage().contains("no metrics table"), e.getMessage());

        // a table of an older layout is named with the column it lacks
        spark.sql("select 'r' as run_id, 1L as iteration, 'loss' as name, 0.5d as value").write().format("delta")
                .save(dir.resolve("tables").resolve("metrics").toString());
        e = assertThrows(IllegalArgumentException.class, () -> new RunTables(spark, dir.toString()).read(null));
        assertTrue(e.getMessage().endsWith("metrics: the metrics table has no column time (written by an older version "
                + "of spark-rlhf; run the run again to report on it)"), e.getMessage());
    }
}
