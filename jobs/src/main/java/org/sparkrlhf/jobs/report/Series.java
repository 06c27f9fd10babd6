package org.sparkrlhf.jobs.report;

import java.util.List;

/** A named curve over iterations, e.g. {@code reward/mean}. */
public record Series(String name, List<Point> points) {
    public Series {
        points = List.copyOf(points);
    }
}
