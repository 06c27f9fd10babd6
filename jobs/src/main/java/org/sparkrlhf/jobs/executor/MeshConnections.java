package org.sparkrlhf.jobs.executor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Function;

/**
 * The communicators this executor JVM keeps between calls, one per (mesh, rank): the TCP mesh and,
 * on GPU ranks, the NCCL communicator (with the subgroups it made) of a mesh of devices outlive the
 * call that connected them, so that the next call on the same devices in the same rank order reuses
 * them instead of binding, exchanging addresses and connecting again. A mesh id comes from the
 * driver, one per ordered device list (see {@code BarrierCallRunner}); the dp / tp / pp layout does
 * not enter it, as a layout only picks subgroups of the same communicator.
 *
 * <p>Whether to reuse is decided by all ranks of a call together, in one rendezvous round
 * ({@link #connect}): each rank says which generation it keeps (none, if it ran on another executor
 * than before, or its executor is new, or its last call failed); only when all keep the same
 * generation is it reused, otherwise every rank closes what it keeps and the call connects anew.
 *
 * <p>Calls on one mesh must not overlap (the driver runs calls on overlapping devices one after the
 * other, and connects a call of its own for a mesh already in use). The driver releases a mesh that
 * is no longer used ({@link #release}), and all of a run's at its end in an embedded run; executors
 * of a cluster close theirs as they exit.
 */
public final class MeshConnections {
    private static final MeshConnections INSTANCE = new MeshConnections();

    private record Held(Communicator communicator, String generation) {
    }

    private final Map<String, Held> held = new ConcurrentHashMap<>();

    MeshConnections() {
    }

    /** This executor JVM's connections. */
    public static MeshConnections get() {
        return INSTANCE;
    }

    /**
     * Rank {@code rank}'s communicator on mesh {@code meshId}: the one kept from an earlier call when
     * every rank of this call keeps the same, else a new one made by {@code connect} (through the
     * same rendezvous), which is then kept. Collective over the call's ranks.
     */
    public Communicator connect(String meshId, int rank, Rendezvous rendezvous, Function<Rendezvous, Communicator> connect) {
        String key = key(meshId, rank);
        Held mine = held.get(key);
        // each rank also proposes the generation of a new connection; rank 0's is taken
        String proposal = Long.toHexString(ThreadLocalRandom.current().nextLong());
        String[] all = rendezvous.allGather((mine == null ? "-" : mine.generation()) + " " + proposal);
        boolean reuse = mine != null;
        for (String s : all) {
            reuse &= generationOf(s).equals(mine == null ? "-" : mine.generation());
        }
        if (reuse) {
            return mine.communicator();
        }
        if (mine != null) {
            close(key, mine);
        }
        Communicator fresh = connect.apply(rendezvous);
        held.put(key, new Held(fresh, all[0].substring(all[0].indexOf(' ') + 1)));
        return fresh;
    }

    private static String generationOf(String handshake) {
        return handshake.substring(0, handshake.indexOf(' '));
    }

    /** Whether this JVM keeps a communicator of {@code rank} on {@code meshId}. */
    public boolean holds(String meshId, int rank) {
        return held.containsKey(key(meshId, rank));
    }

    /** Closes and forgets rank {@code rank}'s communicator on {@code meshId}, if kept. */
    public void discard(String meshId, int rank) {
        String key = key(meshId, rank);
        Held h = held.get(key);
        if (h != null) {
            close(key, h);
        }
    }

    /**
     * Closes and forgets {@code used}, rank {@code rank}'s communicator on {@code meshId}, if it is
     * still the one kept (a call that failed with it; a later call may have connected anew since,
     * while the failed task was still unwinding).
     */
    public void discard(String meshId, int rank, Communicator used) {
        String key = key(meshId, rank);
        Held h = held.get(key);
        if (h != null && h.communicator() == used) {
            close(key, h);
        }
    }

    /** Closes and forgets every communicator this JVM keeps on {@code meshId}. */
    public void release(String meshId) {
        closeWhere(k -> k.startsWith(meshId + "#"));
    }

    /** Closes and forgets every communicator of the meshes whose id starts with {@code prefix} (a run's). */
    public void releaseAll(String prefix) {
        closeWhere(k -> k.startsWith(prefix));
    }

    private void closeWhere(java.util.function.Predicate<String> which) {
        List<String> keys = new ArrayList<>();
        for (String k : held.keySet()) {
            if (which.test(k)) {
                keys.add(k);
            }
        }
        for (String k : keys) {
            Held h = held.get(k);
            if (h != null) {
                close(k, h);
            }
        }
    }

    private void close(String key, Held h) {
        if (held.remove(key, h)) {
            try {
                h.communicator().close();
            } catch (RuntimeException e) {
                // a communicator whose peer is gone: its resources are freed as far as they can be
            }
        }
    }

    private static String key(String meshId, int rank) {
        if (meshId.indexOf('#') >= 0) {
            throw new IllegalArgumentException("mesh id " + meshId + " holds '#'");
        }
        return meshId + "#" + rank;
    }
}
