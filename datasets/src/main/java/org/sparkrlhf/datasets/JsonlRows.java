package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.CheckedRows.*;

/**
 * JSONL through Spark's built-ins only: lines from the text source, each field read as its JSON
 * text ({@link JsonText}), whose type tells a string from a number, an array or null, so that a
 * wrong type is an error rather than silently turned into text.
 */
final class JsonlRows {
    private static final String MESSAGES = "array<struct<role:string,content:string>>";

    private JsonlRows() {
    }

    static CheckedRows read(SparkSession spark, String path, DatasetKind kind, ReadOptions o) {
        // _mid is computed in the projection right above the scan, so it follows the file's order.
        Dataset<Row> lines = spark.read().text(path).select(
                col("_metadata.file_path").as(FILE),
                col("_metadata.file_block_start").as(BLOCK),
                monotonically_increasing_id().as(MID),
                col("value").as("_line"));
        Column line = col("_line");
        Column lineError = when(not(JsonText.isOneValue(line)), lit("not valid JSON"))
                .when(json_object_keys(line).isNull(),
                        concat(lit("expected a JSON object, got "), JsonText.typeName(JsonText.value(line))));

        List<FieldCheck> checks = new ArrayList<>();
        for (DatasetKind.Field f : kind.fields()) {
            String source = o.sourceColumn(f.name());
            Field v = Field.of(line, source);
            String label = CheckedRows.label(o, f.name());
            Column present = v.text().isNotNull();
            checks.add(switch (f.type()) {
                case TEXT -> new FieldCheck(JsonText.string(v.text()), present,
                        labelled(label, textReason(v, f.required())));
                case ID -> new FieldCheck(
                        when(JsonText.isInteger(v.text()), v.text()).otherwise(JsonText.string(v.text())),
                        present, labelled(label, idReason(v, f.required())));
                case MESSAGES -> new FieldCheck(
                        from_json(v.text(), DataType.fromDDL(MESSAGES), Map.of()),
                        present, messagesError(source, label, v.text()));
            });
        }
        Dataset<Row> checked = CheckedRows.assemble(lines, kind, o, checks,
                trim(line).equalTo(""), lineError);
        return new CheckedRows(checked, "line", 1);
    }

    /** A key of an object: whether it is there, and its value's JSON text (null if absent or null). */
    private record Field(Column exists, Column text) {
        static Field of(Column objectText, String key) {
            return new Field(JsonText.hasKey(objectText, key), JsonText.member(objectText, key));
        }
    }

    private static Column labelled(String label, Column reason) {
        return when(reason.isNotNull(), concat(lit("field " + label + ": "), reason));
    }

    /** Why a text value is bad, or null: absent (if required), null, not a string, or blank. */
    private static Column textReason(Field v, boolean required) {
        return when(not(v.exists()), required ? lit("missing") : lit(null))
                .when(v.text().isNull(), required ? lit("null") : lit(null))
                .when(not(JsonText.isString(v.text())), concat(lit("expected a string, got "), JsonText.typeName(v.text())))
                .when(trim(JsonText.string(v.text())).equalTo(""), lit("empty text"));
    }

    private static Column idReason(Field v, boolean required) {
        return when(not(v.exists()), required ? lit("missing") : lit(null))
                .when(v.text().isNull(), required ? lit("null") : lit(null))
                .when(not(JsonText.isString(v.text()).or(JsonText.isInteger(v.text()))),
                        concat(lit("expected a string or an integer, got "), JsonText.typeName(v.text())))
                .when(trim(JsonText.string(v.text())).equalTo(""), lit("empty text"));
    }

    /**
     * Errors of a messages array, each naming its element: {@code field 'messages[1].role': ...}.
     * Absence is left to the prompt-or-messages rule.
     */
    private static Column messagesError(String source, String label, Column v) {
        // Each element as a string only to count and index them; its type comes from its JSON text.
        Column items = from_json(v, DataType.fromDDL("array<string>"), Map.of());
        Column itemErrors = flatten(transform(items, (ignored, i) -> {
            Column at = concat(lit("field '" + source + "["), i.cast("string"), lit("]"));
            Column m = JsonText.element(v, i);
            Column roleReason = textReason(Field.of(m, "role"), true);
            Column contentReason = textReason(Field.of(m, "content"), true);
            return when(m.isNull(), array(concat(at, lit("': null"))))
                    .when(not(JsonText.isObject(m)),
                            array(concat(at, lit("': expected an object with role and content, got "), JsonText.typeName(m))))
                    .otherwise(array_compact(array(
                            when(roleReason.isNotNull(), concat(at, lit(".role': "), roleReason)),
                            when(contentReason.isNotNull(), concat(at, lit(".content': "), contentReason)))));
        }));
        return when(v.isNull(), lit(null))
                .when(not(JsonText.isArray(v)),
                        concat(lit("field " + label + ": expected an array of {role, content} objects, got "), JsonText.typeName(v)))
                .when(size(items).equalTo(0), lit("field " + label + ": no messages"))
                .when(size(itemErrors).gt(0), array_join(itemErrors, "; "));
    }
}
