package org.sparkrlhf.gpuexec.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

/** The bookkeeping of a backend's recorded graphs, with strings for graphs: no GPU needed. */
class LiveGraphsTest {
    private final List<String> destroyed = new ArrayList<>();
    private final LiveGraphs<String, String> graphs = new LiveGraphs<>(2, destroyed::add);

    @Test
    void aReleasedStepsGraphIsDestroyedAtOnce() {
        for (int call = 0; call < 5; call++) {
            // a generation call: a new step, recorded on its first run, released when the generator is done
            String step = "step" + call;
            assertNull(graphs.get(step));
            graphs.put(step, "graph" + call);
            assertEquals("graph" + call, graphs.get(step));
            graphs.release(step);
            assertEquals(0, graphs.size());
        }
        assertEquals(List.of("graph0", "graph1", "graph2", "graph3", "graph4"), destroyed);
        graphs.release("step0");
        assertEquals(5, destroyed.size(), "a step released twice destroys nothing more");
    }

    @Test
    void unreleasedStepsKeepAtMostTheLimitTheLeastRecentlyRunDropped() {
        graphs.put("a", "A");
        graphs.put("b", "B");
        graphs.get("a"); // a ran after b
        graphs.put("c", "C");
        assertEquals(List.of("B"), destroyed);
        assertEquals(2, graphs.size());
        assertNull(graphs.get("b"), "b records again if it runs again");
        assertSame("A", graphs.get("a"));
        assertSame("C", graphs.get("c"));
    }

    @Test
    void aStepRecordedAgainReplacesItsGraph() {
        graphs.put("a", "A1");
        graphs.put("a", "A2");
        assertEquals(List.of("A1"), destroyed);
        assertEquals(1, graphs.size());
    }

    @Test
    void clearDestroysEveryGraph() {
        graphs.put("a", "A");
        graphs.put("b", "B");
        graphs.clear();
        assertEquals(List.of("A", "B"), destroyed);
        assertEquals(0, graphs.size());
    }

    @Test
    void aLimitBelowOneIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new LiveGraphs<String, String>(0, g -> {}));
    }
}
