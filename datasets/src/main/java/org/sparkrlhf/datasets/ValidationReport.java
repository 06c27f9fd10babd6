package org.sparkrlhf.datasets;

import java.util.List;

/**
 * What a read found: how many rows it read, how many were bad (left out when skipping bad rows),
 * and the first bad rows' locations and reasons, e.g.
 * {@code file:/data/p.jsonl, line 7: field 'prompt': empty text}.
 */
public record ValidationReport(String path, DatasetKind kind, DatasetFormat format, long rows, long badRows,
                               List<String> firstErrors) {
    public ValidationReport {
        firstErrors = List.copyOf(firstErrors);
    }

    public long goodRows() {
        return rows - badRows;
    }

    /** A few lines: the counts, then one line per reported bad row. */
    public String summary() {
        StringBuilder b = new StringBuilder();
        b.append(path).append(" (").append(format.name().toLowerCase()).append(", ").append(kind.description())
                .append("): ").append(rows).append(" rows, ").append(badRows).append(" bad");
        if (badRows > firstErrors.size()) b.append(" (first ").append(firstErrors.size()).append(" shown)");
        for (String e : firstErrors) b.append("\n  ").append(e);
        return b.toString();
    }
}
