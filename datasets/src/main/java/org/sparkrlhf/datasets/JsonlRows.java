package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.util.ArrayList;
import java.util.List;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.CheckedRows.*;

/**
 * JSONL through Spark's built-ins only: lines from the text source, each parsed into a VARIANT
 * ({@code try_parse_json}), whose {@code schema_of_variant} tells a string from a number, an
 * array or null, so that a wrong type is an error rather than silently turned into text.
 */
final class JsonlRows {
    private JsonlRows() {
    }

    static CheckedRows read(SparkSession spark, String path, DatasetKind kind, ReadOptions o) {
        // _mid is computed in the projection right above the scan, so it follows the file's order.
        Dataset<Row> lines = spark.read().text(path).select(
                col("_metadata.file_path").as(FILE),
                col("_metadata.file_block_start").as(BLOCK),
                monotonically_increasing_id().as(MID),
                col("value").as("_line"));
        Column json = try_parse_json(col("_line"));
        Column jsonType = schema_of_variant(json);
        Column lineError = when(json.isNull(), lit("not valid JSON"))
                .when(not(jsonType.startsWith("OBJECT")),
                        concat(lit("expected a JSON object, got "), typeName(jsonType)));

        List<FieldCheck> checks = new ArrayList<>();
        for (DatasetKind.Field f : kind.fields()) {
            String source = o.sourceColumn(f.name());
            Column v = try_variant_get(json, keyPath(source), "variant");
            String label = CheckedRows.label(o, f.name());
            Column present = v.isNotNull().and(not(is_variant_null(v)));
            checks.add(switch (f.type()) {
                case TEXT -> new FieldCheck(
                        when(schema_of_variant(v).equalTo("STRING"), try_variant_get(v, "$", "string")),
                        present, labelled(label, textReason(v, f.required())));
                case ID -> new FieldCheck(
                        when(isId(schema_of_variant(v)), try_variant_get(v, "$", "string")),
                        present, labelled(label, idReason(v, f.required())));
                case MESSAGES -> new FieldCheck(
                        try_variant_get(v, "$", "array<struct<role:string,content:string>>"),
                        present, messagesError(source, label, v));
            });
        }
        Dataset<Row> checked = CheckedRows.assemble(lines, kind, o, checks,
                trim(col("_line")).equalTo(""), lineError);
        return new CheckedRows(checked, "line", 1);
    }

    /** The variant path of a top-level key, quoted so that any key but one with a quote works. */
    private static String keyPath(String key) {
        if (key.contains("'")) throw new IllegalArgumentException("JSON key " + key + ": quotes in key names are not supported");
        return "$['" + key + "']";
    }

    private static Column labelled(String label, Column reason) {
        return when(reason.isNotNull(), concat(lit("field " + label + ": "), reason));
    }

    /** Why a text value is bad, or null: absent (if required), null, not a string, or blank. */
    private static Column textReason(Column v, boolean required) {
        Column type = schema_of_variant(v);
        return when(v.isNull(), required ? lit("missing") : lit(null))
                .when(is_variant_null(v), required ? lit("null") : lit(null))
                .when(type.notEqual("STRING"), concat(lit("expected a string, got "), typeName(type)))
                .when(trim(try_variant_get(v, "$", "string")).equalTo(""), lit("empty text"));
    }

    private static Column idReason(Column v, boolean required) {
        Column type = schema_of_variant(v);
        return when(v.isNull(), required ? lit("missing") : lit(null))
                .when(is_variant_null(v), required ? lit("null") : lit(null))
                .when(not(isId(type)), concat(lit("expected a string or an integer, got "), typeName(type)))
                .when(trim(try_variant_get(v, "$", "string")).equalTo(""), lit("empty text"));
    }

    private static Column isId(Column type) {
        return type.isin("STRING", "BIGINT", "INT", "SMALLINT", "TINYINT");
    }

    /**
     * Errors of a messages array, each naming its element: {@code field 'messages[1].role': ...}.
     * Absence is left to the prompt-or-messages rule.
     */
    private static Column messagesError(String source, String label, Column v) {
        Column type = schema_of_variant(v);
        Column items = try_variant_get(v, "$", "array<variant>");
        Column itemErrors = flatten(transform(items, (m, i) -> {
            Column at = concat(lit("field '" + source + "["), i.cast("string"), lit("]"));
            Column mType = schema_of_variant(m);
            Column role = try_variant_get(m, "$.role", "variant");
            Column content = try_variant_get(m, "$.content", "variant");
            Column roleReason = textReason(role, true);
            Column contentReason = textReason(content, true);
            return when(is_variant_null(m), array(concat(at, lit("': null"))))
                    .when(not(mType.startsWith("OBJECT")),
                            array(concat(at, lit("': expected an object with role and content, got "), typeName(mType))))
                    .otherwise(array_compact(array(
                            when(roleReason.isNotNull(), concat(at, lit(".role': "), roleReason)),
                            when(contentReason.isNotNull(), concat(at, lit(".content': "), contentReason)))));
        }));
        return when(v.isNull().or(is_variant_null(v)), lit(null))
                .when(not(type.startsWith("ARRAY")),
                        concat(lit("field " + label + ": expected an array of {role, content} objects, got "), typeName(type)))
                .when(size(items).equalTo(0), lit("field " + label + ": no messages"))
                .when(size(itemErrors).gt(0), array_join(itemErrors, "; "));
    }

    /** JSON's name for a variant type as schema_of_variant writes it ("BIGINT", "OBJECT<a: STRING>", ...). */
    private static Column typeName(Column variantType) {
        Column t = regexp_extract(variantType, "^[A-Z]+", 0);
        return when(t.equalTo("STRING"), lit("a string"))
                .when(t.isin("BIGINT", "INT", "SMALLINT", "TINYINT"), lit("an integer"))
                .when(t.isin("DECIMAL", "DOUBLE", "FLOAT"), lit("a number"))
                .when(t.equalTo("BOOLEAN"), lit("a boolean"))
                .when(t.equalTo("ARRAY"), lit("an array"))
                .when(t.equalTo("OBJECT"), lit("an object"))
                .when(t.equalTo("VOID"), lit("null"))
                .otherwise(lower(t));
    }
}
