package org.sparkrlhf.planner.mesh;

import org.sparkrlhf.planner.spec.ClusterSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * A set of devices a call runs on: {@code size} consecutive global devices from {@code first}. Valid
 * meshes (as in ReaL) are 1, 2, 4, ... devices of one node, aligned to their size, or whole consecutive
 * nodes. Aligned power-of-two pieces keep tensor-parallel groups inside a node and let two meshes be
 * either disjoint or nested, never half-overlapping inside a node.
 */
public record DeviceMesh(int first, int size) {
    public DeviceMesh {
        if (first < 0 || size < 1) {
            throw new IllegalArgumentException("a mesh needs first >= 0 and size >= 1, got " + first + "+" + size);
        }
    }

    /** Why this mesh is not valid on {@code cluster}, or null if it is. */
    public String invalidReason(ClusterSpec cluster) {
        int g = cluster.gpusPerNode();
        if (first + size > cluster.totalGpus()) {
            return "mesh " + label() + " goes past the cluster's " + cluster.totalGpus() + " devices";
        }
        if (size < g) {
            if (Integer.bitCount(size) != 1) {
                return "a mesh inside a node must have a power-of-two size, got " + size;
            }
            if (first % size != 0) {
                return "a mesh of " + size + " devices must start at a multiple of " + size + ", got " + first;
            }
            return null;
        }
        if (size % g != 0 || first % g != 0) {
            return "a mesh of " + size + " devices must be whole nodes of " + g + " (start and size multiples of " + g + ")";
        }
        return null;
    }

    public static DeviceMesh of(ClusterSpec cluster, int first, int size) {
        DeviceMesh m = new DeviceMesh(first, size);
        String why = m.invalidReason(cluster);
        if (why != null) {
            throw new IllegalArgumentException(why);
        }
        return m;
    }

    /** The whole cluster. */
    public static DeviceMesh all(ClusterSpec cluster) {
        return new DeviceMesh(0, cluster.totalGpus());
    }

    /** Every valid mesh of {@code cluster}, smallest first. */
    public static List<DeviceMesh> enumerate(ClusterSpec cluster) {
        List<DeviceMesh> out = new ArrayList<>();
        int g = cluster.gpusPerNode();
        for (int s = 1; s < g; s *= 2) {
            for (int f = 0; f + s <= cluster.totalGpus(); f += s) {
                out.add(new DeviceMesh(f, s));
            }
        }
        for (int n = 1; n <= cluster.nodes(); n++) {
            for (int start = 0; start + n <= cluster.nodes(); start++) {
                out.add(new DeviceMesh(start * g, n * g));
            }
        }
        return out;
    }

    public int end() {
        return first + size;
    }

    public boolean contains(int gpu) {
        return gpu >= first && gpu < first + size;
    }

    public boolean overlaps(DeviceMesh o) {
        return first < o.end() && o.first < end();
    }

    /** How many nodes the mesh touches. */
    public int nodes(int gpusPerNode) {
        return (end() - 1) / gpusPerNode - first / gpusPerNode + 1;
    }

    public int[] gpus() {
        int[] r = new int[size];
        for (int i = 0; i < size; i++) {
            r[i] = first + i;
        }
        return r;
    }

    public String label() {
        return size == 1 ? Integer.toString(first) : first + "-" + (end() - 1);
    }

    @Override
    public String toString() {
        return "mesh[" + label() + "]";
    }
}
