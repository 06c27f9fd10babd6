package org.sparkrlhf.jobs.graph;

/**
 * When a call or hook of an iteration ran on the driver ({@link System#nanoTime}): its work's start
 * and end, a call's reallocation before its stage included (the call holds its devices for both).
 */
public record CallSpan(String name, boolean hook, long startNanos, long endNanos) {
}
