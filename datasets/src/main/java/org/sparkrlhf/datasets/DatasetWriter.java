package org.sparkrlhf.datasets;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/**
 * Writes rows of a kind's canonical schema as JSONL (a directory of part files), Parquet or Delta.
 * Refuses to write over an existing path: a dataset is written once.
 */
public final class DatasetWriter {
    private DatasetWriter() {
    }

    public static void write(Dataset<Row> rows, DatasetFormat format, String path) {
        switch (format) {
            // Spark's JSON writer leaves null fields out: an absent optional field, as readers expect.
            case JSONL -> rows.write().mode("errorifexists").json(path);
            case PARQUET -> rows.write().mode("errorifexists").parquet(path);
            case DELTA -> rows.write().mode("errorifexists").format("delta").save(path);
        }
    }
}
