package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

class DataOrderTest {
    @Test
    void everyEpochIsAPermutationAndResumingRepeatsNothing() {
        DataOrder run = new DataOrder(10, 42, 0, 0);
        List<Integer> all = new ArrayList<>();
        for (int i = 0; i < 7; i++) {
            all.addAll(run.next(4)); // 28 examples: epochs 0, 1 and 8 of epoch 2
        }
        assertEquals(new HashSet<>(all.subList(0, 10)).size(), 10);
        assertEquals(new HashSet<>(all.subList(10, 20)).size(), 10);
        assertNotEquals(all.subList(0, 10), all.subList(10, 20));
        assertEquals(2, run.epoch());
        assertEquals(8, run.offset());
        // a run stopped after 3 batches and resumed at its saved position reads the same stream
        DataOrder first = new DataOrder(10, 42, 0, 0);
        List<Integer> resumed = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            resumed.addAll(first.next(4));
        }
        DataOrder second = new DataOrder(10, 42, first.epoch(), first.offset());
        for (int i = 3; i < 7; i++) {
            resumed.addAll(second.next(4));
        }
        assertEquals(all, resumed);
    }
}
