package org.sparkrlhf.planner.sim;

import org.sparkrlhf.planner.mesh.DeviceMesh;

import java.util.List;

/** A bar of the timeline: a call, or the reallocation of a model's parameters before a call. */
public record TimelineEvent(String label, boolean reallocation, int iteration, List<DeviceMesh> meshes, double start,
                            double end) {
    public TimelineEvent {
        meshes = List.copyOf(meshes);
    }

    public boolean uses(int gpu) {
        for (DeviceMesh m : meshes) {
            if (m.contains(gpu)) {
                return true;
            }
        }
        return false;
    }
}
