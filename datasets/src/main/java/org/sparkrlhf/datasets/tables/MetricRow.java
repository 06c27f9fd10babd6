package org.sparkrlhf.datasets.tables;

import java.time.Instant;
import java.util.Objects;

/** One named figure of an iteration (loss, mean reward, KL, seconds per call, ...). */
public record MetricRow(String name, double value, Instant time) {
    public MetricRow {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(time, "time");
    }
}
