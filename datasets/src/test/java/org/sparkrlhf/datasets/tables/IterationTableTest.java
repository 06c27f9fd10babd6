package org.sparkrlhf.datasets.tables;

import io.delta.tables.DeltaTable;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.TestSpark;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.apache.spark.sql.functions.col;
import static org.junit.jupiter.api.Assertions.*;
import static org.sparkrlhf.datasets.tables.IterationTable.AppendResult.ALREADY_WRITTEN;
import static org.sparkrlhf.datasets.tables.IterationTable.AppendResult.WRITTEN;

/** The Delta tables: schemas, round trips, and a retried iteration leaving exactly one copy of its rows. */
@Tag("spark-data")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class IterationTableTest {
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
    }

    static final Instant T0 = Instant.parse("2026-11-23T10:15:30.123456Z");

    static RolloutRow rollout(String promptId, int iteration, int n, float scale) {
        int[] response = new int[n];
        float[] lp = new float[n];
        float[] ref = new float[n];
        float[] adv = new float[n];
        for (int t = 0; t < n; t++) {
            response[t] = 3 + t + iteration;
            lp[t] = -0.25f * (t + 1) * scale;
            ref[t] = -0.5f * (t + 1);
            adv[t] = 0.125f * t - scale;
        }
        return new RolloutRow(promptId, n - 2, n % 2 == 0 ? "add" : null, "What is 1 + " + n + "?", "answer " + n,
                new int[]{1, 40, 41, 42}, response, lp, ref, null, adv, adv.clone(), null,
                n % 2 == 0 ? 1.0 : 0.0, n % 2 == 0 ? "correct" : "wrong", 0.0625 * n,
                n == 4 ? FinishReason.LENGTH : FinishReason.STOP, iteration, T0.plusSeconds(n));
    }

    static List<RolloutRow> iterationRows(int iteration, float scale) {
        return List.of(rollout("p1", iteration, 2, scale), rollout("p2", iteration, 3, scale),
                rollout("p3", iteration, 4, scale));
    }

    @Test
    void severalIterationsGoInOneCommitAndAReplayWritesOnlyTheMissingOnes(@TempDir Path dir) {
        String path = dir.resolve("rollouts").toString();
        IterationTable<RolloutRow> table = IterationTable.rollouts(spark, path);
        assertEquals(WRITTEN, table.appendIterations("run-a", new TreeMap<>(Map.of(
                1L, iterationRows(1, 1f), 2L, iterationRows(2, 1f)))));
        assertEquals(OptionalLong.of(2), table.lastWrittenIteration("run-a"));
        long commits = DeltaTable.forPath(spark, path).history().count();
        // a resumed run replays 2..4 (its checkpoint was at 1): only 3 and 4 are new, in one more commit
        assertEquals(WRITTEN, table.appendIterations("run-a", new TreeMap<>(Map.of(
                2L, iterationRows(2, 5f), 3L, iterationRows(3, 1f), 4L, iterationRows(4, 1f)))));
        assertEquals(commits + 1, DeltaTable.forPath(spark, path).history().count());
        assertEquals(ALREADY_WRITTEN, table.appendIterations("run-a", new TreeMap<>(Map.of(4L, iterationRows(4, 5f)))));
        for (int i = 1; i <= 4; i++) {
            assertEquals(iterationRows(i, 1f), sorted(table.collectIteration("run-a", i)), "iteration " + i);
        }
        assertEquals(12, table.read().count());
        assertEquals(OptionalLong.of(4), table.lastWrittenIteration("run-a"));
    }

    @Test
    void aRetriedIterationLeavesExactlyOneCopyOfItsRows(@TempDir Path dir) {
        String path = dir.resolve("rollouts").toString();
        IterationTable<RolloutRow> table = IterationTable.rollouts(spark, path);
        assertEquals(OptionalLong.empty(), table.lastWrittenIteration("run-a"));

        List<RolloutRow> first = iterationRows(0, 1f);
        assertEquals(WRITTEN, table.appendIteration("run-a", 0, first));
        // The retry generated different responses (sampling): the first commit stays the only copy.
        assertEquals(ALREADY_WRITTEN, table.appendIteration("run-a", 0, iterationRows(0, 2f)));
        assertEquals(first, sorted(table.collectIteration("run-a", 0)));
        assertEquals(3, table.read().count());

        // Even a writer that skips the check above (a racing retry) is stopped by Delta's txn options.
        Dataset<Row> again = table.readIteration("run-a", 0);
        again.write().format("delta").mode("append").option("txnAppId", "rollouts/run-a").option("txnVersion", 0L)
                .save(path);
        assertEquals(3, table.read().count());

        assertEquals(WRITTEN, table.appendIteration("run-a", 1, iterationRows(1, 1f)));
        assertEquals(WRITTEN, table.appendIteration("run-b", 0, iterationRows(0, 3f)));
        assertEquals(ALREADY_WRITTEN, table.appendIteration("run-a", 1, iterationRows(1, 1f)));
        assertEquals(ALREADY_WRITTEN, table.appendIteration("run-a", 0, iterationRows(0, 1f)));
        assertEquals(OptionalLong.of(1), table.lastWrittenIteration("run-a"));
        assertEquals(OptionalLong.of(0), table.lastWrittenIteration("run-b"));
        assertEquals(9, table.read().count());
        assertEquals(3, table.readIteration("run-b", 0).count());
        assertEquals(iterationRows(0, 3f), sorted(table.collectIteration("run-b", 0)));

        List<String> partitions = DeltaTable.forPath(spark, path).detail().select("partitionColumns").first().getList(0);
        assertEquals(List.of("run_id"), partitions);
        Row lengths = table.readIteration("run-a", 1).filter(col("prompt_id").equalTo("p3"))
                .select("prompt_length", "response_length", "written_at", "sample", "row_id").first();
        assertEquals(4, lengths.getInt(0));
        assertEquals(4, lengths.getInt(1));
        assertFalse(lengths.isNullAt(2));
        assertEquals(2, lengths.getInt(3));
        assertEquals("run-a/1/p3/2", lengths.getString(4));
        assertEquals(RolloutsTable.SCHEMA.fieldNames().length, table.read().schema().fields().length);
    }

    @Test
    void badRowsAreReportedAndNothingIsWritten(@TempDir Path dir) {
        IterationTable<RolloutRow> table = IterationTable.rollouts(spark, dir.resolve("rollouts").toString());
        RolloutRow good = rollout("p1", 0, 2, 1f);
        RolloutRow shortLogprobs = new RolloutRow("p2", 0, null, "q", "a", new int[]{1}, new int[]{5, 6, 7},
                new float[]{-1f, -2f}, null, null, null, null, null, Double.NaN, null, null, FinishReason.STOP, 0, T0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> table.appendIteration("run-a", 0, List.of(good, shortLogprobs)));
        assertTrue(e.getMessage().contains("run run-a, iteration 0"), e.getMessage());
        assertTrue(e.getMessage().contains("prompt_id=p2 sample=0: logprobs: 2 values for 3 response tokens; reward: missing or NaN"),
                e.getMessage());
        assertEquals(0, table.read().count());
        assertEquals(OptionalLong.empty(), table.lastWrittenIteration("run-a"));

        // The iteration can still be written once its rows are right.
        assertEquals(WRITTEN, table.appendIteration("run-a", 0, List.of(good)));
        assertEquals(1, table.read().count());
    }

    @Test
    void aDatasetOfRowsMayLeaveOutNullableColumnsButNotChangeTypes(@TempDir Path dir) {
        IterationTable<RolloutRow> table = IterationTable.rollouts(spark, dir.resolve("rollouts").toString());
        List<Row> rows = new ArrayList<>();
        for (RolloutRow r : iterationRows(0, 1f)) rows.add(RolloutsTable.LAYOUT.toInputRow(r));
        Dataset<Row> full = spark.createDataFrame(rows, RolloutsTable.LAYOUT.inputSchema());
        // GRPO has no critic: no values, advantages, returns columns at all.
        assertEquals(WRITTEN, table.appendIteration("grpo", 0, full.drop("values", "advantages", "returns")));
        List<RolloutRow> back = sorted(table.collectIteration("grpo", 0));
        assertNull(back.get(0).advantages());
        assertArrayEquals(iterationRows(0, 1f).get(0).logprobs(), back.get(0).logprobs());

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> table.appendIteration("grpo", 1, full.withColumn("reward", col("reward").cast("float"))));
        assertTrue(e.getMessage().contains("reward has type float; expected double"), e.getMessage());
    }

    @Test
    void metricsAndPlansRoundTripAndAreIdempotent(@TempDir Path dir) {
        IterationTable<MetricRow> metrics = IterationTable.metrics(spark, dir.resolve("metrics").toString());
        List<MetricRow> m0 = List.of(new MetricRow("reward/mean", 0.375, T0), new MetricRow("loss/actor", Double.NaN, T0));
        assertEquals(WRITTEN, metrics.appendIteration("r", 0, m0));
        assertEquals(ALREADY_WRITTEN, metrics.appendIteration("r", 0, m0));
        List<MetricRow> back = new ArrayList<>(metrics.collectIteration("r", 0));
        back.sort(Comparator.comparing(MetricRow::name).reversed());
        assertEquals(m0, back);

        IterationTable<PlanRow> plans = IterationTable.plans(spark, dir.resolve("plans").toString());
        PlanRow plan = new PlanRow("{\"calls\": [\"actor_gen\", \"actor_train\"]}",
                List.of(new PlanRow.CallTiming("actor_gen", 1.5, 1.75, 0.0, 1.5),
                        new PlanRow.CallTiming("actor_train", 2.0, null, 1.5, 3.5)),
                3.5, null, T0);
        assertEquals(WRITTEN, plans.appendIteration("r", 4, List.of(plan)));
        assertEquals(ALREADY_WRITTEN, plans.appendIteration("r", 4, List.of(plan)));
        assertEquals(List.of(plan), plans.collectIteration("r", 4));

        PlanRow broken = new PlanRow("{not json", List.of(), 1.0, null, T0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> plans.appendIteration("r", 5, List.of(broken)));
        assertTrue(e.getMessage().contains("plan: plan_json: not valid JSON"), e.getMessage());
        assertEquals(1, plans.read().count());
    }

    private static List<RolloutRow> sorted(List<RolloutRow> rows) {
        List<RolloutRow> out = new ArrayList<>(rows);
        out.sort(Comparator.comparing(RolloutRow::promptId));
        return out;
    }
}
