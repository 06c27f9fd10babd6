package org.sparkrlhf.jobs.report;

import io.delta.tables.DeltaTable;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import org.sparkrlhf.datasets.tables.MetricsTable;
import org.sparkrlhf.datasets.tables.PlansTable;
import org.sparkrlhf.datasets.tables.RolloutsTable;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.apache.spark.sql.functions.*;

/**
 * Reads what the report shows of one run from the Delta tables under {@code <output>/tables/}
 * (metrics, and where the run wrote them, plans and rollouts), with DataFrame operations only: the
 * tables may be large, only the small aggregates reach the driver.
 */
public final class RunTables {
    /** How many of the best and of the worst samples the report shows. */
    static final int SAMPLES = 4;

    private static final String TIMELINE = "^timeline/(.+)/(start|end)$";

    private final SparkSession spark;
    private final String output;

    public RunTables(SparkSession spark, String output) {
        this.spark = spark;
        this.output = output;
    }

    /** The report of run {@code runId}, or of the run that wrote the newest metric when it is null. */
    public RunReport read(String runId) {
        Dataset<Row> allMetrics = table("metrics");
        if (allMetrics == null) {
            throw new IllegalArgumentException(path("metrics") + ": no metrics table; " + output
                    + " is not the output folder of a run");
        }
        String run = runId != null ? runId : newestRun(allMetrics);
        Dataset<Row> metrics = allMetrics.filter(col("run_id").equalTo(run));
        if (metrics.isEmpty()) {
            throw new IllegalArgumentException(path("metrics") + ": no metrics of run '" + run + "'; it holds runs "
                    + allMetrics.select("run_id").distinct().orderBy("run_id").as(org.apache.spark.sql.Encoders.STRING())
                    .collectAsList());
        }
        Dataset<Row> timeline = metrics.filter(col("name").rlike(TIMELINE));
        long timelineIteration = timeline.isEmpty() ? -1 : timeline.agg(max("iteration")).first().getLong(0);
        List<Span> measured = measured(timeline.filter(col("iteration").equalTo(timelineIteration)));

        Dataset<Row> plans = runRows("plans", run);
        List<Span> estimated = new ArrayList<>();
        Double estimatedSeconds = null;
        Double measuredSeconds = null;
        if (plans != null) {
            Dataset<Row> plan = plans.filter(col("iteration").equalTo(timelineIteration));
            List<Row> rows = plan.select("estimated_seconds", "measured_seconds").limit(1).collectAsList();
            if (!rows.isEmpty()) {
                Row whole = rows.get(0);
                estimatedSeconds = finite(whole.isNullAt(0) ? null : whole.getDouble(0));
                measuredSeconds = whole.isNullAt(1) ? null : whole.getDouble(1);
            }
            estimated = estimated(plan);
        }

        Dataset<Row> rollouts = runRows("rollouts", run);
        List<Series> lengths = List.of();
        long samplesIteration = -1;
        List<Sample> best = List.of();
        List<Sample> worst = List.of();
        if (rollouts != null && !rollouts.isEmpty()) {
            lengths = responseLengths(rollouts);
            samplesIteration = rollouts.agg(max("iteration")).first().getLong(0);
            Dataset<Row> last = rollouts.filter(col("iteration").equalTo(samplesIteration));
            // ties (a binary reward has many) go to the row id, so the report is the same each time
            best = samples(last.orderBy(col("reward").desc(), col("row_id")));
            worst = samples(last.orderBy(col("reward").asc(), col("row_id")));
        }
        return new RunReport(run, output, curves(metrics.filter(not(col("name").rlike(TIMELINE)))), lengths,
                timelineIteration, measured, estimated, estimatedSeconds, measuredSeconds, samplesIteration, best, worst);
    }

    private static String newestRun(Dataset<Row> metrics) {
        List<Row> newest = metrics.orderBy(col("time").desc()).select("run_id").limit(1).collectAsList();
        if (newest.isEmpty()) {
            throw new IllegalArgumentException("the metrics table is empty");
        }
        return newest.get(0).getString(0);
    }

    /** One series per metric name, points in iteration order. */
    private static List<Series> curves(Dataset<Row> metrics) {
        Map<String, List<Point>> byName = new LinkedHashMap<>();
        for (Row r : metrics.select("name", "iteration", "value").orderBy("name", "iteration").collectAsList()) {
            byName.computeIfAbsent(r.getString(0), n -> new ArrayList<>()).add(new Point(r.getLong(1), r.getDouble(2)));
        }
        List<Series> out = new ArrayList<>();
        byName.forEach((name, points) -> out.add(new Series(name, points)));
        return out;
    }

    /** The timeline metrics of one iteration as spans, in the order they started. */
    private static List<Span> measured(Dataset<Row> timeline) {
        Dataset<Row> spans = timeline
                .select(regexp_extract(col("name"), TIMELINE, 1).as("call"),
                        regexp_extract(col("name"), TIMELINE, 2).as("edge"), col("value"))
                .groupBy("call").pivot("edge", List.of("start", "end")).agg(first("value"))
                .filter(col("start").isNotNull().and(col("end").isNotNull()))
                .orderBy("start", "call");
        List<Span> out = new ArrayList<>();
        for (Row r : spans.collectAsList()) out.add(new Span(r.getString(0), r.getDouble(1), r.getDouble(2)));
        return out;
    }

    /** The plan's schedule of the calls of one plans-table row. */
    private static List<Span> estimated(Dataset<Row> plan) {
        Dataset<Row> calls = plan.select(explode(col("calls")).as("c"))
                .select(col("c.call"), col("c.estimated_start"), col("c.estimated_end"))
                .filter(col("estimated_start").isNotNull().and(col("estimated_end").isNotNull()))
                .orderBy("estimated_start", "call");
        List<Span> out = new ArrayList<>();
        for (Row r : calls.collectAsList()) out.add(new Span(r.getString(0), r.getDouble(1), r.getDouble(2)));
        return out;
    }

    /** Min, mean and max response length per iteration. */
    private static List<Series> responseLengths(Dataset<Row> rollouts) {
        List<Row> rows = rollouts.groupBy("iteration")
                .agg(min("response_length"), avg("response_length"), max("response_length"))
                .orderBy("iteration").collectAsList();
        List<Point> lo = new ArrayList<>();
        List<Point> mean = new ArrayList<>();
        List<Point> hi = new ArrayList<>();
        for (Row r : rows) {
            lo.add(new Point(r.getLong(0), r.getInt(1)));
            mean.add(new Point(r.getLong(0), r.getDouble(2)));
            hi.add(new Point(r.getLong(0), r.getInt(3)));
        }
        return List.of(new Series("max", hi), new Series("mean", mean), new Series("min", lo));
    }

    private static List<Sample> samples(Dataset<Row> ordered) {
        List<Sample> out = new ArrayList<>();
        Column[] shown = {col("row_id"), col("prompt_text"), col("response_text"), col("reward"), col("reward_detail"),
                col("response_length"), col("finish_reason")};
        for (Row r : ordered.select(shown).limit(SAMPLES).collectAsList()) {
            out.add(new Sample(r.getString(0), r.getString(1), r.getString(2), r.getDouble(3), r.getString(4),
                    r.getInt(5), r.getString(6)));
        }
        return out;
    }

    /** A run's rows of a table, or null when the run's output has no such table. */
    private Dataset<Row> runRows(String name, String run) {
        Dataset<Row> t = table(name);
        return t == null ? null : t.filter(col("run_id").equalTo(run));
    }

    /** A table of the run's output, null when absent; one without the columns the report reads is an error. */
    private Dataset<Row> table(String name) {
        String p = path(name);
        if (!DeltaTable.isDeltaTable(spark, p)) {
            return null;
        }
        Dataset<Row> t = spark.read().format("delta").load(p);
        StructType expected = switch (name) {
            case "metrics" -> MetricsTable.SCHEMA;
            case "plans" -> PlansTable.SCHEMA;
            default -> RolloutsTable.SCHEMA;
        };
        List<String> missing = new ArrayList<>(List.of(expected.fieldNames()));
        missing.removeAll(List.of(t.schema().fieldNames()));
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException(p + ": the " + name + " table has no column " + String.join(", ", missing)
                    + " (written by an older version of spark-rlhf; run the run again to report on it)");
        }
        return t;
    }

    private String path(String name) {
        return new Path(new Path(output, "tables"), name).toString();
    }

    private static Double finite(Double v) {
        return v == null || !Double.isFinite(v) ? null : v;
    }
}
