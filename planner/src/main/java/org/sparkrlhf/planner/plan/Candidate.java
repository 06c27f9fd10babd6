package org.sparkrlhf.planner.plan;

import org.sparkrlhf.planner.cost.CallEstimate;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;

/**
 * One choice for one call: mesh, strategy (with its derived micro-batches) and the estimate. {@code id}
 * identifies the (mesh, parameter layout) pair inside a candidate space, or is -1 outside one.
 */
public record Candidate(int call, DeviceMesh mesh, ParallelStrategy strategy, CallEstimate estimate, int id) {
    public CallPlacement placement(String callName) {
        return new CallPlacement(callName, mesh, strategy);
    }
}
