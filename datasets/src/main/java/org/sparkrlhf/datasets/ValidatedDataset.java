package org.sparkrlhf.datasets;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

import java.util.ArrayList;
import java.util.List;

/** The rows of a validated dataset in the kind's canonical schema, and what validation found. */
public record ValidatedDataset(Dataset<Row> rows, ValidationReport report) {

    public List<PromptRow> collectPrompts() {
        requireKind(DatasetKind.PROMPTS);
        List<PromptRow> out = new ArrayList<>();
        for (Row r : rows.collectAsList()) out.add(PromptRow.fromRow(r));
        return out;
    }

    public List<SftRow> collectSft() {
        requireKind(DatasetKind.SFT);
        List<SftRow> out = new ArrayList<>();
        for (Row r : rows.collectAsList()) out.add(SftRow.fromRow(r));
        return out;
    }

    public List<PreferenceRow> collectPreferences() {
        requireKind(DatasetKind.PREFERENCES);
        List<PreferenceRow> out = new ArrayList<>();
        for (Row r : rows.collectAsList()) out.add(PreferenceRow.fromRow(r));
        return out;
    }

    private void requireKind(DatasetKind kind) {
        if (report.kind() != kind) {
            throw new IllegalStateException(report.path() + " was read as a " + report.kind().description()
                    + ", not a " + kind.description());
        }
    }
}
