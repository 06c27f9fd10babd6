package org.sparkrlhf.datasets;

import java.util.Optional;

/**
 * A dataset that cannot be read as asked: bad rows (with a report naming file, line or row, and
 * field) or a source that lacks a required column or has one of the wrong type.
 */
public final class InvalidDatasetException extends IllegalArgumentException {
    private final transient ValidationReport report;

    public InvalidDatasetException(ValidationReport report) {
        super(report.summary() + "\nNothing was read; fix the rows, or read with skipBadRows to leave them out.");
        this.report = report;
    }

    public InvalidDatasetException(String message) {
        super(message);
        this.report = null;
    }

    /** The report, for bad rows; empty for a problem with the source's columns. */
    public Optional<ValidationReport> report() {
        return Optional.ofNullable(report);
    }
}
