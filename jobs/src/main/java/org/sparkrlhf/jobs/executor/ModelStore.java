package org.sparkrlhf.jobs.executor;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * The executor-resident model store: the model shards that live in this executor JVM between
 * stages, keyed by role, parameter version, layout and rank. One store per JVM ({@link #get()}),
 * as the executor outlives its tasks; a barrier task of a call looks its shard up here instead of
 * loading it, and a task that finds nothing (a new or replaced executor) loads it with the loader
 * it is given, from the last checkpoint. Concurrent tasks asking for the same missing shard load
 * it once.
 */
public final class ModelStore {
    /**
     * A shard's identity: the model role ({@code actor}, ...), the parameter version (the number of
     * training steps applied), the layout it is cut for (e.g. {@code dp1.tp2.pp1}) and the rank
     * within that layout.
     */
    public record Key(String role, long version, String layout, int rank) implements java.io.Serializable {
        @Override
        public String toString() {
            return role + "@v" + version + "/" + layout + "/rank" + rank;
        }
    }

    private static final ModelStore JVM_STORE = new ModelStore();

    private final Map<Key, CompletableFuture<Object>> shards = new ConcurrentHashMap<>();
    private final AtomicLong loads = new AtomicLong();

    /** The store of this JVM (one per executor). */
    public static ModelStore get() {
        return JVM_STORE;
    }

    /** A separate store, for tests that simulate several executors in one JVM. */
    public static ModelStore newStore() {
        return new ModelStore();
    }

    /**
     * The shard under {@code key}; when absent, {@code loader} makes it (once, even if several tasks
     * ask at the same time) and it is kept. A loader that fails leaves nothing behind.
     */
    @SuppressWarnings("unchecked")
    public <T> T getOrLoad(Key key, Supplier<T> loader) {
        CompletableFuture<Object> mine = new CompletableFuture<>();
        CompletableFuture<Object> existing = shards.putIfAbsent(key, mine);
        if (existing == null) {
            try {
                T value = loader.get();
                if (value == null) {
                    throw new IllegalStateException("loader of " + key + " returned nothing");
                }
                loads.incrementAndGet();
                mine.complete(value);
                return value;
            } catch (RuntimeException | Error e) {
                shards.remove(key, mine);
                mine.completeExceptionally(e);
                throw e;
            }
        }
        try {
            return (T) existing.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + key, e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("loading " + key + " failed in another task: " + e.getCause(), e.getCause());
        }
    }

    /** The shard under {@code key}, or null when this executor does not hold it (or is still loading it). */
    @SuppressWarnings("unchecked")
    public <T> T find(Key key) {
        CompletableFuture<Object> f = shards.get(key);
        return f == null || !f.isDone() || f.isCompletedExceptionally() ? null : (T) f.join();
    }

    /** Keeps {@code shard} under {@code key}, replacing what was there (a new version after a train step). */
    public void put(Key key, Object shard) {
        shards.put(key, CompletableFuture.completedFuture(shard));
    }

    public boolean remove(Key key) {
        return shards.remove(key) != null;
    }

    /**
     * Drops every shard of {@code role} older than {@code version}, closing those that hold native
     * memory; returns how many were dropped. A reallocation files the new version's copy after this:
     * no call reads an older copy again (a trained copy moves to its new version in place, see
     * Replicas.advanced), and on a GPU each one left behind would keep a model's device memory.
     */
    public int evictBefore(String role, long version) {
        return dropWhere(k -> k.role().equals(role) && k.version() < version);
    }

    /**
     * Drops every shard of {@code roles}, whatever its version or layout, closing those that hold
     * native memory; returns how many were dropped. A run that recovers from a lost executor starts
     * its survivors empty, so no copy of the failed attempt is taken for the new one's.
     */
    public int dropRoles(Collection<String> roles) {
        return dropWhere(k -> roles.contains(k.role()));
    }

    private int dropWhere(Predicate<Key> which) {
        int dropped = 0;
        for (Key k : new ArrayList<>(shards.keySet())) {
            if (which.test(k)) {
                CompletableFuture<Object> f = shards.remove(k);
                if (f != null) {
                    dropped++;
                    if (f.isDone() && !f.isCompletedExceptionally() && f.join() instanceof AutoCloseable c) {
                        try {
                            c.close();
                        } catch (Exception e) {
                            // dropping is what matters; a copy that cannot close leaves its memory to the GC
                        }
                    }
                }
            }
        }
        return dropped;
    }

    /** The keys held now, for the driver's view of where shards are. */
    public List<Key> keys() {
        List<Key> keys = new ArrayList<>();
        for (Map.Entry<Key, CompletableFuture<Object>> e : shards.entrySet()) {
            if (e.getValue().isDone() && !e.getValue().isCompletedExceptionally()) {
                keys.add(e.getKey());
            }
        }
        return keys;
    }

    /** How many times a loader ran in this store (a miss that was filled). */
    public long loads() {
        return loads.get();
    }

    public void clear() {
        shards.clear();
    }
}
