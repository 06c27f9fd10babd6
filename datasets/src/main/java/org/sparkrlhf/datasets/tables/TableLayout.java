package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * What one of the Delta tables holds. A caller gives the rows of one iteration in the
 * {@link #inputSchema()}; the writer adds {@code run_id}, {@code iteration} and the
 * {@link #derivedColumns()} (lengths, the write time) to make rows of the {@link #schema()}.
 *
 * @param <T> the record of one input row
 */
public interface TableLayout<T> {
    /** The table's name, also the first part of its Delta txnAppId ({@code name/runId}). */
    String name();

    /** The table's schema: run_id, iteration, then the input and derived columns. */
    StructType schema();

    /** The columns a caller gives for one iteration's rows: the schema less the keys and derived columns. */
    default StructType inputSchema() {
        Set<String> notGiven = new HashSet<>(derivedColumns().keySet());
        notGiven.add("run_id");
        notGiven.add("iteration");
        return Schemas.without(schema(), notGiven);
    }

    /** Columns computed from the input columns, by name (none unless a table says so). */
    default Map<String, Column> derivedColumns() {
        return Map.of();
    }

    /** A row of the input schema. */
    Row toInputRow(T record);

    /** A record from a row of the table. */
    T fromRow(Row row);

    /**
     * What is wrong with a row of the table's schema, as {@code array<string>} (empty when fine):
     * checked on every row before anything is written.
     */
    Column problems();

    /** How an error names a row, e.g. {@code prompt_id=p7}. */
    Column rowLabel();
}
