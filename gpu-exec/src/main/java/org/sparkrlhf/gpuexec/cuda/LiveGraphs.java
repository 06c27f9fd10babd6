package org.sparkrlhf.gpuexec.cuda;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The recorded graphs of a backend's captured steps, at most {@code limit} at once. A step's graph
 * is destroyed when its owner releases the step (a generator whose buffers are freed), and, should
 * an owner never release it, when more than {@code limit} steps hold graphs: the step replayed least
 * recently loses its graph and records it again if it runs again. Without this every generation
 * call leaked one graph until the backend closed. Plain bookkeeping: the graphs are destroyed by
 * {@code destroy}, so that it runs without a GPU in tests.
 */
final class LiveGraphs<S, G> {
    private final int limit;
    private final Consumer<G> destroy;
    /** In the order the steps last ran, least recent first. */
    private final LinkedHashMap<S, G> graphs = new LinkedHashMap<>(16, 0.75f, true);

    LiveGraphs(int limit, Consumer<G> destroy) {
        if (limit < 1) throw new IllegalArgumentException("a limit of at least one graph is needed, got " + limit);
        this.limit = limit;
        this.destroy = destroy;
    }

    /** The step's graph, which becomes the most recently used; null when it has none (never recorded, or dropped). */
    G get(S step) {
        return graphs.get(step);
    }

    /** Keeps {@code graph} as the step's, destroying the least recently used graphs past the limit. */
    void put(S step, G graph) {
        G previous = graphs.put(step, graph);
        if (previous != null && previous != graph) destroy.accept(previous);
        Iterator<Map.Entry<S, G>> oldest = graphs.entrySet().iterator();
        while (graphs.size() > limit) {
            G dropped = oldest.next().getValue();
            oldest.remove();
            destroy.accept(dropped);
        }
    }

    /** Destroys the step's graph, if it has one. */
    void release(S step) {
        G g = graphs.remove(step);
        if (g != null) destroy.accept(g);
    }

    int size() {
        return graphs.size();
    }

    /** Destroys every graph. */
    void clear() {
        List<G> all = new ArrayList<>(graphs.values());
        graphs.clear();
        for (G g : all) destroy.accept(g);
    }
}
