package org.sparkrlhf.planner.plan;

import java.util.List;

/** A placement for every call of a graph, in the graph's call order. */
public record ExecutionPlan(String algorithm, List<CallPlacement> placements) {
    public ExecutionPlan {
        placements = List.copyOf(placements);
    }

    public CallPlacement placement(String call) {
        for (CallPlacement p : placements) {
            if (p.call().equals(call)) {
                return p;
            }
        }
        throw new IllegalArgumentException("the plan has no call named '" + call + "'");
    }
}
