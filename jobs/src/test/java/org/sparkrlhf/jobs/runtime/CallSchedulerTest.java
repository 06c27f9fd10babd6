package org.sparkrlhf.jobs.runtime;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class CallSchedulerTest {

    @Test
    void ppoIterationRespectsDependenciesAndNeverSharesADevice() throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        Set<Integer> inUse = Collections.synchronizedSet(new HashSet<>());
        List<String> overlaps = Collections.synchronizedList(new ArrayList<>());
        // PPO's graph; the three inference calls sit on disjoint devices and must overlap: each
        // waits until all three have started.
        CountDownLatch inferenceStarted = new CountDownLatch(3);
        List<CallScheduler.Call> calls = List.of(
                call("actor_gen", List.of(), Set.of(0, 1, 2, 3), log, inUse, overlaps, null),
                call("ref_inf", List.of("actor_gen"), Set.of(0), log, inUse, overlaps, inferenceStarted),
                call("reward_inf", List.of("actor_gen"), Set.of(1), log, inUse, overlaps, inferenceStarted),
                call("critic_inf", List.of("actor_gen"), Set.of(2, 3), log, inUse, overlaps, inferenceStarted),
                call("actor_train", List.of("ref_inf", "reward_inf", "critic_inf"), Set.of(0, 1), log, inUse, overlaps, null),
                call("critic_train", List.of("ref_inf", "reward_inf", "critic_inf"), Set.of(1, 2), log, inUse, overlaps, null));
        Map<String, CallScheduler.Outcome> outcomes;
        try (CallScheduler scheduler = new CallScheduler(4)) {
            outcomes = scheduler.runAll(calls);
        }
        assertEquals(6, outcomes.size());
        assertEquals(List.of(), overlaps);
        assertTrue(log.indexOf("start actor_gen") < log.indexOf("start ref_inf"));
        for (String inf : List.of("ref_inf", "reward_inf", "critic_inf")) {
            assertTrue(log.indexOf("end " + inf) < log.indexOf("start actor_train"), log.toString());
            assertTrue(log.indexOf("end " + inf) < log.indexOf("start critic_train"), log.toString());
        }
        assertEquals("actor_train", outcomes.get("actor_train").value());
    }

    private static CallScheduler.Call call(String name, List<String> after, Set<Integer> devices, List<String> log,
                                           Set<Integer> inUse, List<String> overlaps, CountDownLatch together) {
        return new CallScheduler.Call(name, after, devices, () -> {
            synchronized (inUse) {
                for (Integer d : devices) {
                    if (!inUse.add(d)) {
                        overlaps.add(name + " on busy device " + d);
                    }
                }
            }
            log.add("start " + name);
            if (together != null) {
                together.countDown();
                together.await();
            }
            log.add("end " + name);
            synchronized (inUse) {
                inUse.removeAll(devices);
            }
            return name;
        });
    }

    @Test
    void aFailingCallFailsTheIteration() {
        List<CallScheduler.Call> calls = List.of(
                new CallScheduler.Call("a", List.of(), Set.of(0), () -> {
                    throw new IllegalStateException("rank 0 out of memory");
                }),
                new CallScheduler.Call("b", List.of("a"), Set.of(1), () -> "never"));
        try (CallScheduler scheduler = new CallScheduler(2)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> scheduler.runAll(calls));
            assertEquals("rank 0 out of memory", e.getMessage());
        }
    }

    @Test
    void cyclesAndUnknownDependenciesAreRejected() {
        try (CallScheduler scheduler = new CallScheduler(2)) {
            assertThrows(IllegalArgumentException.class, () -> scheduler.runAll(List.of(
                    new CallScheduler.Call("a", List.of("b"), Set.of(0), () -> 1),
                    new CallScheduler.Call("b", List.of("a"), Set.of(1), () -> 2))));
            assertThrows(IllegalArgumentException.class, () -> scheduler.runAll(List.of(
                    new CallScheduler.Call("a", List.of("z"), Set.of(0), () -> 1))));
        }
    }
}
