package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.FinishReason;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.*;

@Tag("spark-data")
class TableWriterTest {
    private static final Instant T0 = Instant.parse("2026-01-01T00:00:00Z");
    private static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("TableWriterTest", 2);
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    private static RolloutRow rollout(String prompt, int sample) {
        return new RolloutRow(prompt, sample, null, "What is " + prompt + "?", "answer", new int[]{1, 2}, new int[]{3},
                new float[]{-0.5f}, null, null, null, null, null, 1.0, "correct", null, FinishReason.STOP, 0, T0);
    }

    @Test
    void everyIterationHandedOverIsInTheTablesOnceAfterAwaitWritten(@TempDir Path dir) {
        String output = dir.toString();
        try (TableWriter writer = new TableWriter(spark, output, "run", true, 0)) {
            writer.append(0, List.of(), List.of(new MetricRow("eval/reward_mean", 0.25, T0)), null);
            for (int i = 1; i <= 12; i++) {
                writer.append(i, List.of(rollout("p" + i, 0), rollout("p" + i, 1)),
                        List.of(new MetricRow("reward/mean", i / 16.0, T0)), null);
            }
            writer.awaitWritten();
        }
        IterationTable<RolloutRow> rollouts = IterationTable.rollouts(spark, RunOutput.rolloutsPath(output));
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, RunOutput.metricsPath(output));
        assertEquals(24, rollouts.read().count());
        assertEquals(13, metrics.read().count());
        assertEquals(OptionalLong.of(12), rollouts.lastWrittenIteration("run"));
        assertEquals(OptionalLong.of(12), metrics.lastWrittenIteration("run"));
        for (int i = 1; i <= 12; i++) {
            assertEquals(2, rollouts.readIteration("run", i).filter("prompt_id = 'p" + i + "'").count(), "iteration " + i);
            assertEquals(i / 16.0, metrics.readIteration("run", i).first().<Double>getAs("value"), 0.0);
        }
        // how many commits it took depends on the writer thread's timing; that several iterations go
        // into one commit, each once, is IterationTableTest's severalIterationsGoInOneCommit...
    }

    @Test
    void rowsWaitForTheCadenceAndAwaitWrittenCommitsThemAtOnce(@TempDir Path dir) throws InterruptedException {
        String output = dir.toString();
        try (TableWriter writer = new TableWriter(spark, output, "run", true, 3600)) {
            IterationTable<MetricRow> metrics = IterationTable.metrics(spark, RunOutput.metricsPath(output));
            // every round waits for the hour to pass, the first too, unless awaitWritten asks for it
            writer.append(1, List.of(rollout("p1", 0)), List.of(new MetricRow("reward/mean", 0.5, T0)), null);
            Thread.sleep(1500);
            assertEquals(OptionalLong.empty(), metrics.lastWrittenIteration("run"));
            writer.awaitWritten();
            writer.append(2, List.of(rollout("p2", 0)), List.of(new MetricRow("reward/mean", 0.25, T0)), null);
            Thread.sleep(1500);
            assertEquals(OptionalLong.of(1), metrics.lastWrittenIteration("run"));
            writer.awaitWritten();
            assertEquals(OptionalLong.of(2), metrics.lastWrittenIteration("run"));
            assertEquals(2, IterationTable.rollouts(spark, RunOutput.rolloutsPath(output)).read().count());
        }
    }

    @Test
    void aFailedCommitFailsTheNextAppendOrWait(@TempDir Path dir) {
        String output = dir.toString();
        try (TableWriter writer = new TableWriter(spark, output, "run", true, 0)) {
            // a rollout with a NaN reward is refused by the table's row checks
            RolloutRow bad = new RolloutRow("p", 0, null, "q", "a", new int[]{1}, new int[]{3}, new float[]{-1f}, null,
                    null, null, null, null, Double.NaN, "wrong", null, FinishReason.STOP, 0, T0);
            writer.append(1, List.of(bad), List.of(new MetricRow("reward/mean", 0.0, T0)), null);
            IllegalStateException e = assertThrows(IllegalStateException.class, writer::awaitWritten);
            assertTrue(e.getMessage().contains("writing iteration 1 to the rollouts table"), e.getMessage());
            assertTrue(e.getMessage().contains("reward: missing or NaN"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> writer.append(2, List.of(), List.of(), null));
        }
    }
}
