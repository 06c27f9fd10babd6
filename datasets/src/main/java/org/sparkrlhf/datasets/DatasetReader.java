package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.expressions.Window;
import org.apache.spark.sql.expressions.WindowSpec;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.CheckedRows.*;

/**
 * Reads a prompt, SFT or preference dataset from JSONL, Parquet or Delta, validates every row, and
 * returns the rows in the kind's canonical schema with a {@link ValidationReport}.
 *
 * <p>Validation runs (one Spark job) before this returns, so a caller that writes what it read
 * writes nothing when the read fails. A bad row fails the read with an {@link InvalidDatasetException}
 * naming the file, the line (JSONL) or row index (Parquet, Delta) and the field; with
 * {@link ReadOptions#skipBadRows()} bad rows are left out and counted in the report instead.
 * Blank lines in JSONL are not rows.
 *
 * <p>The data path is Spark built-in expressions only (no UDFs), so that Spark RAPIDS can plan it.
 */
public final class DatasetReader {
    private DatasetReader() {
    }

    public static ValidatedDataset read(SparkSession spark, String path, DatasetKind kind, ReadOptions options) {
        options.checkFields(kind);
        DatasetFormat format = options.format() != null ? options.format() : DatasetFormat.detect(spark, path);
        CheckedRows checked = format == DatasetFormat.JSONL
                ? JsonlRows.read(spark, path, kind, options)
                : TableRows.read(spark, path, format, kind, options);

        Dataset<Row> rows = checked.rows().filter(not(col(BLANK)));
        Column bad = size(col(ERRORS)).gt(0);
        Row counts = rows.agg(count(lit(1)), coalesce(sum(when(bad, 1L).otherwise(0L)), lit(0L))).first();
        long total = counts.getLong(0);
        long badRows = counts.getLong(1);
        List<String> firstErrors = badRows == 0 ? List.of() : firstErrors(checked, options.errorsReported());
        ValidationReport report = new ValidationReport(path, kind, format, total, badRows, firstErrors);
        if (badRows > 0 && !options.skipBadRows()) throw new InvalidDatasetException(report);

        // The casts only widen nullability, so that every source gives exactly kind.schema().
        Dataset<Row> good = rows.filter(not(bad)).select(Arrays.stream(kind.schema().fields())
                .map(f -> col(f.name()).cast(f.dataType()).as(f.name())).toArray(Column[]::new));
        return new ValidatedDataset(good, report);
    }

    public static ValidatedDataset read(SparkSession spark, String path, DatasetKind kind) {
        return read(spark, path, kind, ReadOptions.defaults());
    }

    /**
     * The first bad rows in file order, each with its position in its file. A row's position is the
     * number of rows before its split in the same file plus its place inside its split; the splits'
     * sizes come from one aggregation. Computed only when there are bad rows, over a checkpoint of
     * the narrow location columns, so that every use sees the same monotonically increasing ids.
     */
    private static List<String> firstErrors(CheckedRows checked, int n) {
        Dataset<Row> located = checked.rows().select(col(FILE), col(BLOCK), col(MID), col(BLANK), col(ERRORS))
                .localCheckpoint();
        WindowSpec earlierSplits = Window.partitionBy(FILE).orderBy(BLOCK)
                .rowsBetween(Window.unboundedPreceding(), -1);
        Dataset<Row> splits = located.groupBy(FILE, BLOCK)
                .agg(min(MID).as("_first"), count(lit(1)).as("_n"))
                .withColumn("_before", coalesce(sum("_n").over(earlierSplits), lit(0L)));
        List<Row> rows = located.filter(not(col(BLANK)).and(size(col(ERRORS)).gt(0)))
                .join(splits, new String[]{FILE, BLOCK})
                .select(col(FILE), col("_before").plus(col(MID)).minus(col("_first")).as("_pos"), col(ERRORS))
                .orderBy(FILE, "_pos")
                .limit(n)
                .collectAsList();
        List<String> out = new ArrayList<>();
        for (Row r : rows) {
            long position = r.getLong(1) + checked.positionBase();
            out.add(r.getString(0) + ", " + checked.positionLabel() + " " + position + ": "
                    + String.join("; ", r.<String>getList(2)));
        }
        return out;
    }
}
