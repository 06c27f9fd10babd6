package org.sparkrlhf.datasets;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How to read a dataset.
 *
 * @param format         the format, or null to detect it from the path
 * @param columns        field name to the source's column (or JSON key) name, for the fields whose
 *                       names differ from the canonical ones
 * @param skipBadRows    false: a bad row fails the read; true: bad rows are left out, counted and
 *                       reported in the {@link ValidationReport}
 * @param errorsReported how many bad rows the report (and the error) describes
 */
public record ReadOptions(DatasetFormat format, Map<String, String> columns, boolean skipBadRows, int errorsReported) {
    public ReadOptions {
        columns = Map.copyOf(columns);
        if (errorsReported < 1) throw new IllegalArgumentException("errorsReported must be at least 1");
    }

    public static ReadOptions defaults() {
        return new ReadOptions(null, Map.of(), false, 10);
    }

    public ReadOptions withFormat(DatasetFormat f) {
        return new ReadOptions(f, columns, skipBadRows, errorsReported);
    }

    /** Reads field {@code field} from the source column {@code sourceColumn}. */
    public ReadOptions withColumn(String field, String sourceColumn) {
        Map<String, String> m = new LinkedHashMap<>(columns);
        m.put(field, sourceColumn);
        return new ReadOptions(format, m, skipBadRows, errorsReported);
    }

    public ReadOptions withSkipBadRows(boolean skip) {
        return new ReadOptions(format, columns, skip, errorsReported);
    }

    public ReadOptions withErrorsReported(int n) {
        return new ReadOptions(format, columns, skipBadRows, n);
    }

    /** The source's name of a field. */
    public String sourceColumn(String field) {
        return columns.getOrDefault(field, field);
    }

    void checkFields(DatasetKind kind) {
        for (String field : columns.keySet()) kind.field(field);
    }
}
