package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.ByteType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.IntegerType;
import org.apache.spark.sql.types.LongType;
import org.apache.spark.sql.types.ShortType;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.CheckedRows.*;

/**
 * Parquet and Delta: typed columns, so a wrong type is a property of a column, reported once for
 * the whole source before any row is read; nulls and empty text are per row.
 */
final class TableRows {
    private TableRows() {
    }

    static CheckedRows read(SparkSession spark, String path, DatasetFormat format, DatasetKind kind, ReadOptions o) {
        Dataset<Row> df = format == DatasetFormat.DELTA
                ? spark.read().format("delta").load(path)
                : spark.read().parquet(path);
        StructType schema = df.schema();
        List<String> problems = new ArrayList<>();
        List<FieldCheck> checks = new ArrayList<>();
        boolean anyPrompt = false;
        for (DatasetKind.Field f : kind.fields()) {
            String source = o.sourceColumn(f.name());
            String label = CheckedRows.label(o, f.name());
            StructField column = find(schema, source);
            if (column == null) {
                if (f.required()) problems.add("no column '" + source + "' for field '" + f.name() + "'");
                DataType t = f.type() == DatasetKind.FieldType.MESSAGES ? DatasetKind.MESSAGES_TYPE : DataTypes.StringType;
                checks.add(new FieldCheck(lit(null).cast(t), lit(false), lit(null)));
                continue;
            }
            if (f.name().equals("prompt") || f.name().equals("messages")) anyPrompt = true;
            Column c = col("`" + source.replace("`", "``") + "`");
            String typeProblem = typeProblem(f.type(), column.dataType());
            if (typeProblem != null) {
                problems.add("column '" + source + "' (field '" + f.name() + "') has type "
                        + column.dataType().simpleString() + "; expected " + typeProblem);
                continue;
            }
            checks.add(switch (f.type()) {
                case TEXT -> new FieldCheck(c, c.isNotNull(), labelled(label, textReason(c, f.required())));
                case ID -> new FieldCheck(c.cast("string"), c.isNotNull(),
                        labelled(label, textReason(c.cast("string"), f.required())));
                case MESSAGES -> new FieldCheck(
                        transform(c, m -> struct(m.getField("role").as("role"), m.getField("content").as("content"))),
                        c.isNotNull(), messagesError(source, label, c));
            });
        }
        if (!anyPrompt) {
            problems.add("no column '" + o.sourceColumn("prompt") + "' or '" + o.sourceColumn("messages") + "' for the prompt");
        }
        if (!problems.isEmpty()) {
            throw new InvalidDatasetException(path + " (" + format.name().toLowerCase() + ", " + kind.description()
                    + "): " + String.join("; ", problems) + ". Its columns: " + Arrays.toString(schema.fieldNames()));
        }
        // _mid is computed in the projection right above the scan, so it follows the file's order.
        Dataset<Row> located = df.select(col("*"),
                col("_metadata.file_path").as(FILE),
                col("_metadata.file_block_start").as(BLOCK),
                monotonically_increasing_id().as(MID));
        Dataset<Row> checked = CheckedRows.assemble(located, kind, o, checks, lit(false), lit(null));
        return new CheckedRows(checked, "row index", 0);
    }

    private static StructField find(StructType schema, String name) {
        for (StructField f : schema.fields()) if (f.name().equals(name)) return f;
        return null;
    }

    /** What the type should be, or null when it is right. */
    private static String typeProblem(DatasetKind.FieldType type, DataType t) {
        switch (type) {
            case TEXT:
                return t instanceof StringType ? null : "string";
            case ID:
                return t instanceof StringType || t instanceof LongType || t instanceof IntegerType
                        || t instanceof ShortType || t instanceof ByteType ? null : "string or an integer type";
            case MESSAGES:
                if (t instanceof ArrayType a && a.elementType() instanceof StructType s) {
                    StructField role = find(s, "role");
                    StructField content = find(s, "content");
                    if (role != null && content != null && role.dataType() instanceof StringType
                            && content.dataType() instanceof StringType) {
                        return null;
                    }
                }
                return "array<struct<role: string, content: string>>";
            default:
                throw new IllegalStateException(type.toString());
        }
    }

    private static Column labelled(String label, Column reason) {
        return when(reason.isNotNull(), concat(lit("field " + label + ": "), reason));
    }

    private static Column textReason(Column s, boolean required) {
        return when(s.isNull(), required ? lit("missing") : lit(null))
                .when(trim(s).equalTo(""), lit("empty text"));
    }

    private static Column messagesError(String source, String label, Column c) {
        Column itemErrors = flatten(transform(c, (m, i) -> {
            Column at = concat(lit("field '" + source + "["), i.cast("string"), lit("]"));
            Column roleReason = textReason(m.getField("role"), true);
            Column contentReason = textReason(m.getField("content"), true);
            return when(m.isNull(), array(concat(at, lit("': null"))))
                    .otherwise(array_compact(array(
                            when(roleReason.isNotNull(), concat(at, lit(".role': "), roleReason)),
                            when(contentReason.isNotNull(), concat(at, lit(".content': "), contentReason)))));
        }));
        return when(c.isNull(), lit(null))
                .when(size(c).equalTo(0), lit("field " + label + ": no messages"))
                .when(size(itemErrors).gt(0), array_join(itemErrors, "; "));
    }
}
