package org.sparkrlhf.jobs.runtime;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The driver's ids of the meshes whose communicators executors keep between calls
 * ({@link org.sparkrlhf.jobs.executor.MeshConnections}): one per ordered device list (rank r on
 * device r), prefixed by the run so that two runs in one JVM never share one. A mesh is lent to
 * one call at a time; a call on a mesh that another running call holds gets no id and connects its
 * own communicator (two calls on one connection would mix their messages).
 */
final class MeshRegistry {
    private final String prefix;
    private final Map<String, Entry> byDevices = new LinkedHashMap<>();
    private long next;

    private static final class Entry {
        final String id;
        final List<DeviceSlot> devices;
        boolean lent;

        Entry(String id, List<DeviceSlot> devices) {
            this.id = id;
            this.devices = devices;
        }
    }

    /** @param prefix the run's prefix of every mesh id (no '#') */
    MeshRegistry(String prefix) {
        this.prefix = prefix;
    }

    String prefix() {
        return prefix;
    }

    /** Lends {@code mesh}'s id to a call (a new id for a mesh not seen before); null while another call holds it. */
    synchronized String lend(List<DeviceSlot> mesh) {
        Entry e = byDevices.computeIfAbsent(key(mesh), k -> new Entry(prefix + "m" + next++, List.copyOf(mesh)));
        if (e.lent) {
            return null;
        }
        e.lent = true;
        return e.id;
    }

    /** Takes the id back from the call it was lent to. */
    synchronized void giveBack(String id) {
        for (Entry e : byDevices.values()) {
            if (e.id.equals(id)) {
                e.lent = false;
            }
        }
    }

    /**
     * Forgets {@code mesh} (a later call on it gets a new id); returns its id, or null if it had none.
     *
     * @throws IllegalStateException while a call holds it (its connections are in use)
     */
    synchronized String forget(List<DeviceSlot> mesh) {
        Entry e = byDevices.get(key(mesh));
        if (e == null) {
            return null;
        }
        if (e.lent) {
            throw new IllegalStateException("mesh " + e.id + " " + mesh + " is in use by a running call");
        }
        byDevices.remove(key(mesh));
        return e.id;
    }

    /** Every mesh with an id, in the order they were first used. */
    synchronized List<List<DeviceSlot>> meshes() {
        List<List<DeviceSlot>> out = new ArrayList<>();
        for (Entry e : byDevices.values()) {
            out.add(e.devices);
        }
        return out;
    }

    /** The mesh as its ranks' devices: executor and address, in rank order. */
    private static String key(List<DeviceSlot> mesh) {
        StringBuilder b = new StringBuilder();
        for (DeviceSlot d : mesh) {
            b.append(d.executorId()).append('/').append(d.address()).append(',');
        }
        return b.toString();
    }
}
