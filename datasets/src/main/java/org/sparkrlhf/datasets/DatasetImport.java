package org.sparkrlhf.datasets;

import org.apache.spark.sql.SparkSession;

import java.util.Locale;

/**
 * Validates a dataset and writes it, in its canonical schema, to a new location (by default a Delta
 * table). The read validates every row first, so a bad dataset writes nothing.
 *
 * <pre>
 * DatasetImport --kind prompts|sft|preferences --in PATH [--in-format jsonl|parquet|delta]
 *               --out PATH [--out-format delta|parquet|jsonl] [--column FIELD=SOURCE]... [--skip-bad-rows]
 * </pre>
 */
public final class DatasetImport {
    private DatasetImport() {
    }

    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("spark-rlhf dataset import").getOrCreate();
        ValidationReport report = run(spark, args);
        System.out.println(report.summary());
    }

    /** Runs the import in {@code spark}; returns the read's report. */
    public static ValidationReport run(SparkSession spark, String... args) {
        DatasetKind kind = null;
        String in = null;
        String out = null;
        DatasetFormat outFormat = DatasetFormat.DELTA;
        ReadOptions options = ReadOptions.defaults();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--kind" -> kind = DatasetKind.valueOf(value(args, ++i, a).toUpperCase(Locale.ROOT));
                case "--in" -> in = value(args, ++i, a);
                case "--in-format" -> options = options.withFormat(DatasetFormat.parse(value(args, ++i, a)));
                case "--out" -> out = value(args, ++i, a);
                case "--out-format" -> outFormat = DatasetFormat.parse(value(args, ++i, a));
                case "--column" -> {
                    String spec = value(args, ++i, a);
                    int eq = spec.indexOf('=');
                    if (eq <= 0) throw new IllegalArgumentException("--column wants FIELD=SOURCE, got " + spec);
                    options = options.withColumn(spec.substring(0, eq), spec.substring(eq + 1));
                }
                case "--skip-bad-rows" -> options = options.withSkipBadRows(true);
                default -> throw new IllegalArgumentException("unknown argument " + a);
            }
        }
        if (kind == null || in == null || out == null) {
            throw new IllegalArgumentException("usage: --kind prompts|sft|preferences --in PATH --out PATH "
                    + "[--in-format F] [--out-format F] [--column FIELD=SOURCE]... [--skip-bad-rows]");
        }
        ValidatedDataset read = DatasetReader.read(spark, in, kind, options);
        DatasetWriter.write(read.rows(), outFormat, out);
        return read.report();
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) throw new IllegalArgumentException(flag + " needs a value");
        return args[i];
    }
}
