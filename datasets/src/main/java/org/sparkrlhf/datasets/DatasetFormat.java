package org.sparkrlhf.datasets;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Locale;

/** How a dataset is stored. Paths are Hadoop paths: local files, {@code file:}, {@code s3a://}, {@code dbfs:/}, ... */
public enum DatasetFormat {
    /** One JSON object per line; a file or a directory of files (optionally compressed: .gz, .bz2). */
    JSONL,
    /** A Parquet file or a directory of Parquet files. */
    PARQUET,
    /** A Delta table directory (holds {@code _delta_log}). */
    DELTA;

    public static DatasetFormat parse(String name) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "jsonl": case "json": case "ndjson": return JSONL;
            case "parquet": return PARQUET;
            case "delta": return DELTA;
            default: throw new IllegalArgumentException("unknown dataset format '" + name + "'; use jsonl, parquet or delta");
        }
    }

    /**
     * Tells the format from the path: a directory with {@code _delta_log} is Delta; a name ending in
     * .jsonl/.json/.ndjson (maybe compressed) is JSONL, in .parquet Parquet; a directory whose data
     * files all have one of those endings is that format.
     */
    public static DatasetFormat detect(SparkSession spark, String path) {
        Path p = new Path(path);
        DatasetFormat byName = byName(p.getName());
        if (byName != null) return byName;
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        try {
            FileSystem fs = p.getFileSystem(conf);
            if (!fs.exists(p)) throw new IllegalArgumentException(path + ": no such file or directory");
            if (fs.exists(new Path(p, "_delta_log"))) return DELTA;
            if (fs.getFileStatus(p).isDirectory()) {
                DatasetFormat seen = null;
                for (FileStatus s : fs.listStatus(p)) {
                    String name = s.getPath().getName();
                    if (name.startsWith("_") || name.startsWith(".") || s.isDirectory()) continue;
                    DatasetFormat f = byName(name);
                    if (f == null || (seen != null && f != seen)) { seen = null; break; }
                    seen = f;
                }
                if (seen != null) return seen;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot look at it to tell its format", e);
        }
        throw new IllegalArgumentException(path + ": cannot tell whether this is JSONL, Parquet or Delta; name the format");
    }

    private static DatasetFormat byName(String fileName) {
        String n = fileName.toLowerCase(Locale.ROOT);
        for (String c : new String[]{".gz", ".bz2", ".zst", ".deflate"}) {
            if (n.endsWith(c)) n = n.substring(0, n.length() - c.length());
        }
        if (n.endsWith(".jsonl") || n.endsWith(".json") || n.endsWith(".ndjson")) return JSONL;
        if (n.endsWith(".parquet")) return PARQUET;
        return null;
    }
}
