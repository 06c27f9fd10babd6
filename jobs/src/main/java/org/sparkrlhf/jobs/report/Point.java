package org.sparkrlhf.jobs.report;

/** One point of a curve: an iteration and a value. */
public record Point(double x, double y) {
}
