package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

import java.util.ArrayList;
import java.util.List;

import static org.apache.spark.sql.functions.*;

/**
 * A source's rows after the per-field checks, before anything is dropped: where each row came from
 * ({@code _file}, {@code _block}: the start of the file split it was read from, {@code _mid}: a
 * monotonically increasing id that follows the order of rows inside a split), whether it is a blank
 * line, the canonical field values and {@code _errors}, the row's problems (empty when it is good).
 *
 * @param positionLabel how a position is named in reports: "line" (1-based) or "row index" (0-based)
 */
record CheckedRows(Dataset<Row> rows, String positionLabel, int positionBase) {
    static final String FILE = "_file";
    static final String BLOCK = "_block";
    static final String MID = "_mid";
    static final String BLANK = "_blank";
    static final String ERRORS = "_errors";

    /** The checks of one field as a source computed them. */
    record FieldCheck(Column value, Column present, Column error) {
    }

    /**
     * Puts a source's field checks together: the prompt-or-messages rule, the derived id of formats
     * whose id is optional, and the row's list of errors. {@code rowError} (a line that is not a JSON
     * object) replaces the field errors, which would only repeat it.
     */
    static Dataset<Row> assemble(Dataset<Row> located, DatasetKind kind, ReadOptions o, List<FieldCheck> checks,
                                 Column blank, Column rowError) {
        List<Column> first = new ArrayList<>(List.of(col(FILE), col(BLOCK), col(MID), blank.as(BLANK),
                rowError.cast("string").as("_row_error")));
        List<Column> fieldErrors = new ArrayList<>();
        for (int i = 0; i < checks.size(); i++) {
            String name = kind.fields().get(i).name();
            FieldCheck c = checks.get(i);
            first.add(c.value().as(name));
            first.add(c.present().as("_has_" + name));
            first.add(c.error().cast("string").as("_err_" + name));
            fieldErrors.add(col("_err_" + name));
        }
        Dataset<Row> stage = located.select(first.toArray(new Column[0]));

        String p = label(o, "prompt");
        String m = label(o, "messages");
        Column choice = when(col("_has_prompt").and(col("_has_messages")),
                lit("fields " + p + " and " + m + " are both given; a row has one or the other"))
                .when(not(col("_has_prompt")).and(not(col("_has_messages"))),
                        lit("field " + p + " (or " + m + "): missing"));
        fieldErrors.add(choice);
        Column errors = when(col("_row_error").isNotNull(), array(col("_row_error")))
                .otherwise(array_compact(array(fieldErrors.toArray(new Column[0]))));

        List<Column> out = new ArrayList<>(List.of(col(FILE), col(BLOCK), col(MID), col(BLANK)));
        for (DatasetKind.Field f : kind.fields()) {
            if (f.type() == DatasetKind.FieldType.ID && !f.required()) {
                out.add(coalesce(col("id"), derivedId(kind)).as("id"));
            } else {
                out.add(col(f.name()));
            }
        }
        out.add(errors.as(ERRORS));
        return stage.select(out.toArray(new Column[0]));
    }

    /** How reports name a field: its source name, and the canonical name when they differ. */
    static String label(ReadOptions o, String field) {
        String source = o.sourceColumn(field);
        return source.equals(field) ? "'" + source + "'" : "'" + source + "' (" + field + ")";
    }

    /** A content hash: rows without an id keep the same id wherever the data is moved or re-split. */
    private static Column derivedId(DatasetKind kind) {
        List<Column> parts = new ArrayList<>();
        for (DatasetKind.Field f : kind.fields()) {
            if (f.type() == DatasetKind.FieldType.ID) continue;
            parts.add(f.type() == DatasetKind.FieldType.MESSAGES ? to_json(col(f.name())) : col(f.name()));
        }
        return substring(sha2(concat_ws("\u001f", parts.toArray(new Column[0])), 256), 1, 16);
    }
}
