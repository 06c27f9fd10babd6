package org.sparkrlhf.jobs.report;

/** A call or hook of an iteration's schedule, in seconds from the iteration's start. */
public record Span(String name, double start, double end) {
}
