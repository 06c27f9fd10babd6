package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ModelStoreTest {
    private static final ModelStore.Key ACTOR_0 = new ModelStore.Key("actor", 0, "dp1.tp2.pp1", 0);

    @Test
    void concurrentMissesLoadOnce() throws Exception {
        ModelStore store = ModelStore.newStore();
        AtomicInteger loads = new AtomicInteger();
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<float[]>> futures = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            futures.add(pool.submit(() -> {
                start.await();
                return store.getOrLoad(ACTOR_0, () -> {
                    loads.incrementAndGet();
                    return new float[]{42f};
                });
            }));
        }
        start.countDown();
        float[] first = futures.get(0).get();
        for (Future<float[]> f : futures) {
            assertSame(first, f.get());
        }
        pool.shutdown();
        assertEquals(1, loads.get());
        assertEquals(1, store.loads());
    }

    @Test
    void aFailedLoadLeavesNothingAndCanBeRetried() {
        ModelStore store = ModelStore.newStore();
        assertThrows(IllegalStateException.class, () -> store.getOrLoad(ACTOR_0, () -> {
            throw new IllegalStateException("checkpoint unreadable");
        }));
        assertNull(store.find(ACTOR_0));
        assertEquals(7f, store.<float[]>getOrLoad(ACTOR_0, () -> new float[]{7f})[0]);
    }

    @Test
    void evictsOlderVersionsOfOneRole() {
        ModelStore store = ModelStore.newStore();
        store.put(new ModelStore.Key("actor", 1, "dp1.tp1.pp1", 0), new float[1]);
        store.put(new ModelStore.Key("actor", 2, "dp1.tp1.pp1", 0), new float[1]);
        store.put(new ModelStore.Key("critic", 1, "dp1.tp1.pp1", 0), new float[1]);
        assertEquals(1, store.evictBefore("actor", 2));
        assertEquals(2, store.keys().size());
        assertNull(store.find(new ModelStore.Key("actor", 1, "dp1.tp1.pp1", 0)));
    }

    @Test
    void evictingClosesTheCopiesItDrops() {
        ModelStore store = ModelStore.newStore();
        List<String> closed = new ArrayList<>();
        store.put(new ModelStore.Key("actor", 1, "dp2.tp1.pp1", 0), (AutoCloseable) () -> closed.add("v1"));
        store.put(new ModelStore.Key("actor", 2, "dp2.tp1.pp1", 0), (AutoCloseable) () -> closed.add("v2"));
        assertEquals(1, store.evictBefore("actor", 2));
        assertEquals(List.of("v1"), closed, "the dropped copy is closed, the kept one is not");
        assertEquals(1, store.dropRoles(List.of("actor")));
        assertEquals(List.of("v1", "v2"), closed);
    }
}
