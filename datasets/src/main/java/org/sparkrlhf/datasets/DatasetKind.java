package org.sparkrlhf.datasets;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.util.ArrayList;
import java.util.List;

/**
 * The three dataset formats and their fields. Every format has a prompt that is either a text
 * ({@code prompt}) or chat messages ({@code messages}): exactly one of the two per row.
 *
 * <p>The canonical schema (what readers return, whatever the source's column names) is the fields
 * in order, all strings except {@code messages}: {@code array<struct<role: string, content: string>>}.
 */
public enum DatasetKind {
    /** Prompts for RLHF rollouts: id, prompt or messages, optional reference answer and group. */
    PROMPTS("prompt dataset", List.of(
            new Field("id", FieldType.ID, true),
            new Field("prompt", FieldType.TEXT, false),
            new Field("messages", FieldType.MESSAGES, false),
            new Field("reference", FieldType.TEXT, false),
            new Field("group", FieldType.TEXT, false))),
    /** Supervised fine-tuning: prompt or messages, and the answer. An absent id is derived from the content. */
    SFT("SFT dataset", List.of(
            new Field("id", FieldType.ID, false),
            new Field("prompt", FieldType.TEXT, false),
            new Field("messages", FieldType.MESSAGES, false),
            new Field("answer", FieldType.TEXT, true))),
    /** Preference pairs: prompt or messages, chosen and rejected answers, optional group. */
    PREFERENCES("preference dataset", List.of(
            new Field("id", FieldType.ID, false),
            new Field("prompt", FieldType.TEXT, false),
            new Field("messages", FieldType.MESSAGES, false),
            new Field("chosen", FieldType.TEXT, true),
            new Field("rejected", FieldType.TEXT, true),
            new Field("group", FieldType.TEXT, false)));

    /** What a field holds. */
    public enum FieldType {
        /** A non-empty string or an integer (read as its decimal string). */
        ID,
        /** A non-empty string. */
        TEXT,
        /** A non-empty array of {role, content} objects, both non-empty strings. */
        MESSAGES
    }

    /** A field of a format; {@code required} false means the field may be absent or null. */
    public record Field(String name, FieldType type, boolean required) {
    }

    public static final ArrayType MESSAGES_TYPE = DataTypes.createArrayType(new StructType()
            .add("role", DataTypes.StringType)
            .add("content", DataTypes.StringType));

    private final String description;
    private final List<Field> fields;

    DatasetKind(String description, List<Field> fields) {
        this.description = description;
        this.fields = fields;
    }

    public String description() {
        return description;
    }

    public List<Field> fields() {
        return fields;
    }

    public Field field(String name) {
        for (Field f : fields) if (f.name().equals(name)) return f;
        throw new IllegalArgumentException(description + " has no field '" + name + "'; its fields are " + fieldNames());
    }

    public List<String> fieldNames() {
        List<String> names = new ArrayList<>();
        for (Field f : fields) names.add(f.name());
        return names;
    }

    /** The schema readers return and writers expect. */
    public StructType schema() {
        List<StructField> out = new ArrayList<>();
        for (Field f : fields) {
            out.add(DataTypes.createStructField(f.name(),
                    f.type() == FieldType.MESSAGES ? MESSAGES_TYPE : DataTypes.StringType, true));
        }
        return DataTypes.createStructType(out);
    }

    /** A DataFrame of this kind from rows made by the records' {@code toRow()}. */
    public Dataset<Row> createDataFrame(SparkSession spark, List<Row> rows) {
        return spark.createDataFrame(rows, schema());
    }
}
