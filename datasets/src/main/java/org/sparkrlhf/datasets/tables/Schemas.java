package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.MapType;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import static org.apache.spark.sql.functions.*;

/** Small helpers for the tables' schemas and checks. */
final class Schemas {
    static final ArrayType INTS = DataTypes.createArrayType(DataTypes.IntegerType);
    static final ArrayType FLOATS = DataTypes.createArrayType(DataTypes.FloatType);

    private Schemas() {
    }

    /** A nullable column with a comment (shown by DESCRIBE); checks, not nullability, keep rows whole. */
    static StructField column(String name, DataType type, String comment) {
        return new StructField(name, type, true, Metadata.empty()).withComment(comment);
    }

    static StructType keyColumns() {
        return new StructType(new StructField[]{
                column("run_id", DataTypes.StringType, "the run that wrote the row; the table is partitioned by it"),
                column("iteration", DataTypes.LongType, "the RLHF iteration, from 0")});
    }

    /** The schema without the run id, iteration and the derived columns. */
    static StructType without(StructType schema, java.util.Set<String> names) {
        StructType out = new StructType();
        for (StructField f : schema.fields()) if (!names.contains(f.name())) out = out.add(f);
        return out;
    }

    /** Same names and types, whatever the nullability and comments. */
    static boolean sameType(DataType a, DataType b) {
        if (a instanceof ArrayType x && b instanceof ArrayType y) return sameType(x.elementType(), y.elementType());
        if (a instanceof MapType x && b instanceof MapType y) {
            return sameType(x.keyType(), y.keyType()) && sameType(x.valueType(), y.valueType());
        }
        if (a instanceof StructType x && b instanceof StructType y) {
            if (x.fields().length != y.fields().length) return false;
            for (int i = 0; i < x.fields().length; i++) {
                if (!x.fields()[i].name().equals(y.fields()[i].name())) return false;
                if (!sameType(x.fields()[i].dataType(), y.fields()[i].dataType())) return false;
            }
            return true;
        }
        return a.equals(b);
    }

    static Column missing(String column) {
        return when(col(column).isNull(), lit(column + ": missing"));
    }

    static Column blank(String column) {
        return when(col(column).isNull().or(trim(col(column)).equalTo("")), lit(column + ": missing or empty"));
    }
}
