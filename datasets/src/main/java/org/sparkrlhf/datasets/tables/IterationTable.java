package org.sparkrlhf.datasets.tables;

import io.delta.tables.DeltaTable;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.delta.DeltaLog;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.storage.StorageLevel;
import scala.Option;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.SortedMap;
import java.util.TreeMap;

import static org.apache.spark.sql.functions.*;

/**
 * A Delta table (rollouts, metrics or plans) written one iteration at a time, idempotently.
 *
 * <p>{@link #appendIteration} writes with Delta's idempotent-write options
 * {@code txnAppId = "<table>/<runId>"} and {@code txnVersion = iteration}: Delta records the
 * highest version written for each app id in the same commit as the rows, and skips a write whose
 * version is not higher. So a retried iteration (a failed job re-run, or a resume from a checkpoint
 * that replays iterations) never writes its rows twice, and since a Delta commit is atomic, an
 * iteration that failed mid-write left nothing behind. Iterations of a run are appended in
 * increasing order. The table is partitioned by {@code run_id}.
 *
 * <p>Every row is checked before anything is written; a bad row fails the append with an error
 * naming the table, run, iteration, row and column.
 */
public final class IterationTable<T> {
    /** What an append did. */
    public enum AppendResult {
        /** The iteration's rows were committed by this call. */
        WRITTEN,
        /** The table already holds this iteration (or a later one) of the run: nothing was written. */
        ALREADY_WRITTEN
    }

    private static final int REPORTED_ROWS = 5;
    /** Rows from the driver up to this many are written as one file (a GRPO iteration's rollouts are 256). */
    private static final int ONE_FILE_ROWS = 1024;
    /** The column in which {@link #appendIterations} gives each row's iteration (a name no layout uses). */
    private static final String ROW_ITERATION = "_spark_rlhf_iteration";

    private final SparkSession spark;
    private final String path;
    private final TableLayout<T> layout;
    private boolean checked;

    public IterationTable(SparkSession spark, String path, TableLayout<T> layout) {
        this.spark = Objects.requireNonNull(spark);
        this.path = Objects.requireNonNull(path);
        this.layout = Objects.requireNonNull(layout);
    }

    public static IterationTable<RolloutRow> rollouts(SparkSession spark, String path) {
        return new IterationTable<>(spark, path, RolloutsTable.LAYOUT);
    }

    public static IterationTable<MetricRow> metrics(SparkSession spark, String path) {
        return new IterationTable<>(spark, path, MetricsTable.LAYOUT);
    }

    public static IterationTable<PlanRow> plans(SparkSession spark, String path) {
        return new IterationTable<>(spark, path, PlansTable.LAYOUT);
    }

    public String path() {
        return path;
    }

    public TableLayout<T> layout() {
        return layout;
    }

    /** The Delta txnAppId of a run's appends to this table. */
    public String appId(String runId) {
        return layout.name() + "/" + runId;
    }

    /**
     * Creates the table (empty, partitioned by run_id, columns commented) unless it exists; checks
     * that an existing table has this layout's columns.
     */
    public synchronized void createIfAbsent() {
        if (checked) return;
        DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(layout.schema())
                .partitionedBy("run_id")
                .comment("spark-rlhf " + layout.name() + " table")
                .execute();
        StructType actual = spark.read().format("delta").load(path).schema();
        if (!sameColumns(actual, layout.schema())) {
            throw new IllegalStateException(path + ": this " + layout.name() + " table has columns "
                    + actual.simpleString() + "; expected " + layout.schema().simpleString());
        }
        checked = true;
    }

    /** The highest iteration of the run that this table has committed, from Delta's transaction log. */
    public OptionalLong lastWrittenIteration(String runId) {
        // Delta keeps the txnAppId -> txnVersion map in its snapshot; it has no public API to read it.
        // Delta 4.0.0 computes the map by replaying the log, a Spark job on every new snapshot (0.8-1 s on
        // two cores, local[2], against 0.4-0.5 s for the write itself); the idempotent write reads the same
        // snapshot's map, so a commit pays one replay. The .crc files it writes already hold the map, and
        // newer Delta reads it from there.
        DeltaLog log = DeltaLog.forTable(spark, path);
        Option<Object> version = log.update(false, Option.empty(), Option.empty()).transactions().get(appId(runId));
        return version.isDefined() ? OptionalLong.of((Long) version.get()) : OptionalLong.empty();
    }

    public AppendResult appendIteration(String runId, long iteration, List<T> rows) {
        return appendIterations(runId, new TreeMap<>(Map.of(iteration, rows)));
    }

    /**
     * Appends the rows of several iterations of a run (iteration -> rows) in one Delta commit, as the
     * run's write of the newest one: iterations the table already holds are left out (a resumed run
     * replays iterations it may have written before it stopped), the others are written together or,
     * if the commit fails, not at all. A run that writes in the background so commits, in one go,
     * the iterations that finished while the last commit was made.
     */
    public AppendResult appendIterations(String runId, SortedMap<Long, List<T>> rowsByIteration) {
        if (runId == null || runId.isBlank()) throw new IllegalArgumentException("run id is empty");
        if (rowsByIteration.isEmpty()) throw new IllegalArgumentException("no iteration to append");
        if (rowsByIteration.firstKey() < 0) {
            throw new IllegalArgumentException("iteration " + rowsByIteration.firstKey() + " is negative");
        }
        createIfAbsent();
        OptionalLong last = lastWrittenIteration(runId);
        SortedMap<Long, List<T>> missing = last.isPresent() ? rowsByIteration.tailMap(last.getAsLong() + 1) : rowsByIteration;
        if (missing.isEmpty()) return AppendResult.ALREADY_WRITTEN;
        StructType schema = layout.inputSchema().add(ROW_ITERATION, DataTypes.LongType, false);
        List<Row> input = new ArrayList<>();
        for (Map.Entry<Long, List<T>> e : missing.entrySet()) {
            for (T r : e.getValue()) input.add(withIteration(layout.toInputRow(r), e.getKey()));
        }
        write(runId, missing.lastKey(), spark.createDataFrame(input, schema), true, input.size());
        return AppendResult.WRITTEN;
    }

    private static Row withIteration(Row row, long iteration) {
        Object[] values = new Object[row.size() + 1];
        for (int i = 0; i < row.size(); i++) values[i] = row.get(i);
        values[row.size()] = iteration;
        return RowFactory.create(values);
    }

    /**
     * Appends one iteration's rows, given with (at least) the layout's input columns; nullable
     * input columns that are absent are written as nulls.
     */
    public AppendResult appendIteration(String runId, long iteration, Dataset<Row> rows) {
        if (runId == null || runId.isBlank()) throw new IllegalArgumentException("run id is empty");
        if (iteration < 0) throw new IllegalArgumentException("iteration " + iteration + " is negative");
        createIfAbsent();
        OptionalLong last = lastWrittenIteration(runId);
        if (last.isPresent() && last.getAsLong() >= iteration) return AppendResult.ALREADY_WRITTEN;
        write(runId, iteration, rows, true, -1);
        return AppendResult.WRITTEN;
    }

    /**
     * Appends rows about an event of the run at {@code iteration} (a restart after a failure), each
     * time it is called: an event happens once, whatever the table holds, and it does not count as
     * the iteration's rows ({@link #lastWrittenIteration} does not move).
     */
    public void appendEvent(String runId, long iteration, List<T> rows) {
        if (runId == null || runId.isBlank()) throw new IllegalArgumentException("run id is empty");
        if (iteration < 0) throw new IllegalArgumentException("iteration " + iteration + " is negative");
        createIfAbsent();
        List<Row> input = new ArrayList<>(rows.size());
        for (T r : rows) input.add(layout.toInputRow(r));
        write(runId, iteration, spark.createDataFrame(input, layout.inputSchema()), false, input.size());
    }

    /**
     * Checks and writes rows; with {@code idempotent}, as the run's write of {@code iteration} (Delta's
     * txn options). Rows given as a Dataset ({@code driverRows} < 0) are cached: the check and the
     * write read them once, even when they are an expensive stage's output. Rows given from the
     * driver are not: over a local relation Spark's optimizer evaluates the check on the driver
     * without a job, where caching would run one to fill the cache; and up to {@value #ONE_FILE_ROWS}
     * of them are written as one file, not one per CPU slot (more are spread over the slots' tasks,
     * which carry the rows: a large batch can still pass the task size Spark warns about).
     */
    private void write(String runId, long iteration, Dataset<Row> rows, boolean idempotent, long driverRows) {
        boolean cache = driverRows < 0;
        Dataset<Row> complete = complete(runId, iteration, rows);
        if (cache) {
            complete = complete.persist(StorageLevel.MEMORY_AND_DISK());
        }
        try {
            List<Row> bad = complete.filter(size(layout.problems()).gt(0))
                    .select(layout.rowLabel(), layout.problems())
                    .limit(REPORTED_ROWS)
                    .collectAsList();
            if (!bad.isEmpty()) {
                StringBuilder b = new StringBuilder(path + " (" + layout.name() + "), run " + runId + ", iteration "
                        + iteration + ": bad rows, nothing written:");
                for (Row r : bad) b.append("\n  ").append(r.getString(0)).append(": ").append(String.join("; ", r.<String>getList(1)));
                throw new IllegalArgumentException(b.toString());
            }
            Dataset<Row> written = !cache && driverRows <= ONE_FILE_ROWS ? complete.coalesce(1) : complete;
            var writer = written.write().format("delta").mode("append");
            if (idempotent) {
                writer = writer.option("txnAppId", appId(runId)).option("txnVersion", iteration);
            }
            writer.save(path);
        } finally {
            if (cache) {
                complete.unpersist();
            }
        }
    }

    /**
     * The input rows with the run id, iteration and derived columns, in the table's column order.
     * Two selects: the derived columns read the input columns as the first select made them.
     */
    private Dataset<Row> complete(String runId, long iteration, Dataset<Row> rows) {
        List<String> problems = new ArrayList<>();
        // rows of several iterations carry their own; otherwise they are all of this one
        Column iterationOfRow = find(rows.schema(), ROW_ITERATION) != null ? col(ROW_ITERATION) : lit(iteration);
        List<Column> input = new ArrayList<>(List.of(lit(runId).as("run_id"), iterationOfRow.as("iteration")));
        for (StructField f : layout.inputSchema().fields()) {
            StructField given = find(rows.schema(), f.name());
            if (given == null) {
                input.add(lit(null).cast(f.dataType()).as(f.name()));
            } else if (Schemas.sameType(given.dataType(), f.dataType())) {
                input.add(col("`" + f.name() + "`").cast(f.dataType()).as(f.name()));
            } else {
                problems.add(f.name() + " has type " + given.dataType().simpleString() + "; expected " + f.dataType().simpleString());
            }
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException(path + " (" + layout.name() + "): rows for run " + runId + ", iteration "
                    + iteration + " have the wrong columns: " + String.join("; ", problems));
        }
        Map<String, Column> derived = layout.derivedColumns();
        List<Column> all = new ArrayList<>();
        for (String n : layout.schema().fieldNames()) all.add(derived.containsKey(n) ? derived.get(n).as(n) : col(n));
        return rows.select(input.toArray(new Column[0])).select(all.toArray(new Column[0]));
    }

    /** All rows of the table. */
    public Dataset<Row> read() {
        return spark.read().format("delta").load(path);
    }

    public Dataset<Row> readIteration(String runId, long iteration) {
        return read().filter(col("run_id").equalTo(runId).and(col("iteration").equalTo(iteration)));
    }

    public List<T> collectIteration(String runId, long iteration) {
        List<T> out = new ArrayList<>();
        for (Row r : readIteration(runId, iteration).collectAsList()) out.add(layout.fromRow(r));
        return out;
    }

    private static StructField find(StructType s, String name) {
        for (StructField f : s.fields()) if (f.name().equals(name)) return f;
        return null;
    }

    private static boolean sameColumns(StructType a, StructType b) {
        if (a.fields().length != b.fields().length) return false;
        for (int i = 0; i < a.fields().length; i++) {
            if (!a.fields()[i].name().equals(b.fields()[i].name())) return false;
            if (!Schemas.sameType(a.fields()[i].dataType(), b.fields()[i].dataType())) return false;
        }
        return true;
    }
}
