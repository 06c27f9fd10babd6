package org.sparkrlhf.planner.search;

import org.sparkrlhf.planner.plan.Candidate;

/** The best assignment a search found, its iteration time, how many proposals it evaluated and how long it ran. */
public record SearchResult(Candidate[] best, double iterationSeconds, long steps, double elapsedSeconds) {
}
