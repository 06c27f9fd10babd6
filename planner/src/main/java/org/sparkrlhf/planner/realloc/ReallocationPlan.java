package org.sparkrlhf.planner.realloc;

import java.util.List;

/** The transfers that turn one parameter layout of a model into another, and what they cost in bytes. */
public record ReallocationPlan(List<Transfer> transfers, ReallocationSummary summary, int dtypeBytes) {
    public ReallocationPlan {
        transfers = List.copyOf(transfers);
    }
}
