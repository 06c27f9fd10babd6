package org.sparkrlhf.jobs.report;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * {@code spark-rlhf report OUTPUT [--run RUN_ID] [--html FILE]}: the report of a run as one HTML
 * page, from the Delta tables under {@code OUTPUT/tables/}; written to {@code OUTPUT/report.html}
 * unless {@code --html} names another file (any Hadoop FileSystem path). Without {@code --run}, the
 * run that wrote the newest metric.
 */
public final class ReportCommand {
    static final String USAGE = "usage: spark-rlhf report OUTPUT [--run RUN_ID] [--html FILE]";

    private ReportCommand() {
    }

    public static int run(String[] args) {
        return run(args, System.out, System.err);
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        String output = null;
        String runId = null;
        String html = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if ((a.equals("--run") || a.equals("--html")) && i + 1 < args.length) {
                if (a.equals("--run")) {
                    runId = args[++i];
                } else {
                    html = args[++i];
                }
            } else if (a.startsWith("-") || output != null) {
                err.println("spark-rlhf report: unexpected argument '" + a + "'");
                err.println(USAGE);
                return 2;
            } else {
                output = a;
            }
        }
        if (output == null) {
            err.println(USAGE);
            return 2;
        }
        String target = html != null ? html : new Path(output, "report.html").toString();
        SparkSession spark = start();
        try {
            RunReport report = new RunTables(spark, output).read(runId);
            write(target, ReportPage.html(report), spark.sparkContext().hadoopConfiguration());
            out.println("wrote " + target + " (run " + report.runId() + ")");
            return 0;
        } catch (IllegalArgumentException e) {
            err.println("spark-rlhf report: " + e.getMessage());
            return 2;
        } finally {
            spark.stop();
        }
    }

    /** Writes the page through Hadoop's FileSystem, so that OUTPUT may be on s3a://, dbfs:/ ... */
    static void write(String target, String page, Configuration conf) {
        Path path = new Path(target);
        try (FSDataOutputStream s = path.getFileSystem(conf).create(path, true)) {
            s.write(page.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + target + ": " + e.getMessage(), e);
        }
    }

    /** Under spark-submit the master comes from it; embedded, a small local session (the tables are small). */
    private static SparkSession start() {
        SparkSession.Builder builder = SparkSession.builder().appName("spark-rlhf report")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog");
        if (System.getProperty("spark.master") == null) {
            builder.master("local[2]").config("spark.ui.enabled", "false")
                    .config("spark.sql.shuffle.partitions", "4")
                    .config("spark.databricks.delta.snapshotPartitions", "2");
        }
        return builder.getOrCreate();
    }
}
