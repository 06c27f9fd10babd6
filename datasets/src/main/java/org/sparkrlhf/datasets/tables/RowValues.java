package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Row;

import java.sql.Timestamp;
import java.time.Instant;
import java.util.List;

/** Conversions between record fields and Spark row values, the same for every table. */
final class RowValues {
    private RowValues() {
    }

    static Timestamp timestamp(Instant t) {
        return t == null ? null : Timestamp.from(t);
    }

    static Instant instant(Row r, String field) {
        Object v = r.getAs(field);
        if (v == null) return null;
        if (v instanceof Instant i) return i;
        return ((Timestamp) v).toInstant();
    }

    static int[] ints(Row r, String field) {
        int i = r.fieldIndex(field);
        if (r.isNullAt(i)) return null;
        List<Integer> l = r.getList(i);
        int[] out = new int[l.size()];
        for (int k = 0; k < out.length; k++) out[k] = l.get(k);
        return out;
    }

    static float[] floats(Row r, String field) {
        int i = r.fieldIndex(field);
        if (r.isNullAt(i)) return null;
        List<Float> l = r.getList(i);
        float[] out = new float[l.size()];
        for (int k = 0; k < out.length; k++) out[k] = l.get(k);
        return out;
    }

    static Integer[] boxed(int[] a) {
        if (a == null) return null;
        Integer[] out = new Integer[a.length];
        for (int k = 0; k < a.length; k++) out[k] = a[k];
        return out;
    }

    static Float[] boxed(float[] a) {
        if (a == null) return null;
        Float[] out = new Float[a.length];
        for (int k = 0; k < a.length; k++) out[k] = a[k];
        return out;
    }
}
