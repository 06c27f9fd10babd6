package org.sparkrlhf.planner.plan;

import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;

/** Where and how one call runs: its devices and its parallel strategy. */
public record CallPlacement(String call, DeviceMesh mesh, ParallelStrategy strategy) {
}
