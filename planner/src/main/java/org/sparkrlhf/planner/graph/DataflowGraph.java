package org.sparkrlhf.planner.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An algorithm as data: its model function calls and its driver hooks, each reading and writing keys
 * of the iteration's batch. Edges follow keys: a call depends on the call that writes a key it reads,
 * directly or through driver hooks (a hook's inputs come from calls too); keys nobody writes come
 * from the dataset. The planner sees the calls only ({@link #calls}, {@link #dependencies}); the
 * runtime walks calls and hooks together ({@link #hooks}, {@link #producerOf}). Across iterations,
 * the first call on a model role in iteration i+1 waits for the last call on that role in iteration
 * i (the parameter version it must see).
 */
public final class DataflowGraph {
    private final String algorithm;
    private final List<ModelCall> calls;
    private final int[][] deps;
    private final List<String> datasetKeys;
    private final List<DriverHook> hooks;

    public DataflowGraph(String algorithm, List<ModelCall> calls) {
        this(algorithm, calls, List.of());
    }

    public DataflowGraph(String algorithm, List<ModelCall> calls, List<DriverHook> hooks) {
        this.algorithm = algorithm;
        this.hooks = List.copyOf(hooks);
        if (calls.isEmpty()) {
            throw new IllegalArgumentException("algorithm " + algorithm + " has no model calls");
        }
        Map<String, Integer> byName = new HashMap<>();
        Map<String, Integer> producer = new HashMap<>();
        for (int i = 0; i < calls.size(); i++) {
            ModelCall c = calls.get(i);
            if (byName.put(c.name(), i) != null) {
                throw new IllegalArgumentException("algorithm " + algorithm + ": two calls named " + c.name());
            }
            for (String k : c.outputKeys()) {
                Integer prev = producer.put(k, i);
                if (prev != null) {
                    throw new IllegalArgumentException("algorithm " + algorithm + ": key '" + k + "' is written by both "
                            + calls.get(prev).name() + " and " + c.name());
                }
            }
        }
        Map<String, DriverHook> hookOf = new HashMap<>();
        for (DriverHook h : hooks) {
            if (byName.containsKey(h.name())) {
                throw new IllegalArgumentException("algorithm " + algorithm + ": a call and a hook are both named " + h.name());
            }
            for (String k : h.outputKeys()) {
                if (producer.containsKey(k) || hookOf.containsKey(k)) {
                    throw new IllegalArgumentException("algorithm " + algorithm + ": key '" + k + "' has two producers");
                }
                hookOf.put(k, h);
            }
        }
        List<String> fromData = new ArrayList<>();
        int[][] d = new int[calls.size()][];
        for (int i = 0; i < calls.size(); i++) {
            Set<Integer> mine = new LinkedHashSet<>();
            collect(calls.get(i).name(), calls.get(i).inputKeys(), producer, hookOf, fromData, mine, new LinkedHashSet<>());
            if (mine.contains(i)) {
                throw new IllegalArgumentException("algorithm " + algorithm + ": call " + calls.get(i).name()
                        + " reads its own output");
            }
            d[i] = mine.stream().mapToInt(Integer::intValue).toArray();
        }
        for (DriverHook h : hooks) {
            collect(h.name(), h.inputKeys(), producer, hookOf, fromData, new LinkedHashSet<>(), new LinkedHashSet<>());
        }
        this.calls = List.copyOf(calls);
        this.deps = d;
        this.datasetKeys = List.copyOf(fromData);
        this.order = computeOrder();
    }

    private final int[] order;

    /** The calls whose outputs {@code keys} come from, directly or through hooks; keys nobody writes go to {@code fromData}. */
    private void collect(String reader, List<String> keys, Map<String, Integer> producer, Map<String, DriverHook> hookOf,
                         List<String> fromData, Set<Integer> calls, Set<String> visiting) {
        for (String k : keys) {
            Integer p = producer.get(k);
            DriverHook h = hookOf.get(k);
            if (p != null) {
                calls.add(p);
            } else if (h != null) {
                if (!visiting.add(h.name())) {
                    throw new IllegalArgumentException("algorithm " + algorithm + ": hooks form a cycle through " + h.name());
                }
                collect(h.name(), h.inputKeys(), producer, hookOf, fromData, calls, visiting);
                visiting.remove(h.name());
            } else if (!fromData.contains(k)) {
                fromData.add(k);
            }
        }
    }

    private int[] computeOrder() {
        int n = calls.size();
        int[] state = new int[n];
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            visit(i, state, out);
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private void visit(int i, int[] state, List<Integer> out) {
        if (state[i] == 2) {
            return;
        }
        if (state[i] == 1) {
            throw new IllegalArgumentException("algorithm " + algorithm + ": the calls form a cycle through "
                    + calls.get(i).name());
        }
        state[i] = 1;
        for (int p : deps[i]) {
            visit(p, state, out);
        }
        state[i] = 2;
        out.add(i);
    }

    public String algorithm() {
        return algorithm;
    }

    public List<ModelCall> calls() {
        return calls;
    }

    public int size() {
        return calls.size();
    }

    public ModelCall call(int i) {
        return calls.get(i);
    }

    public int indexOf(String name) {
        for (int i = 0; i < calls.size(); i++) {
            if (calls.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("algorithm " + algorithm + " has no call named '" + name + "'");
    }

    /** The driver hooks, in the order given. */
    public List<DriverHook> hooks() {
        return hooks;
    }

    /** The name of the call or hook that writes {@code key}, or null when the key comes from the dataset. */
    public String producerOf(String key) {
        for (ModelCall c : calls) {
            if (c.outputKeys().contains(key)) {
                return c.name();
            }
        }
        for (DriverHook h : hooks) {
            if (h.outputKeys().contains(key)) {
                return h.name();
            }
        }
        return null;
    }

    /**
     * Indices of the calls within the same iteration whose outputs call {@code i} reads, directly or
     * through driver hooks.
     */
    public int[] dependencies(int i) {
        return deps[i].clone();
    }

    /** The keys the calls read that no call writes: they come from the dataset. */
    public List<String> datasetKeys() {
        return datasetKeys;
    }

    /** Call indices in an order where every call comes after the calls it depends on. */
    public int[] topologicalOrder() {
        return order.clone();
    }

    /** Model roles in order of first appearance. */
    public List<String> roles() {
        Set<String> r = new LinkedHashSet<>();
        for (ModelCall c : calls) {
            r.add(c.role());
        }
        return List.copyOf(r);
    }

    /**
     * This graph without the train calls of {@code frozen} roles (models a run keeps as they are): their
     * other calls stay, now of a frozen model. An error when a dropped call writes a key something reads.
     */
    public DataflowGraph withoutTraining(java.util.Collection<String> frozen) {
        List<ModelCall> kept = new ArrayList<>();
        Set<String> dropped = new LinkedHashSet<>();
        for (ModelCall c : calls) {
            if (c.kind() == CallKind.TRAIN && frozen.contains(c.role())) {
                dropped.addAll(c.outputKeys());
            } else {
                kept.add(c);
            }
        }
        if (kept.size() == calls.size()) {
            return this;
        }
        List<List<String>> readers = new ArrayList<>();
        kept.forEach(c -> readers.add(c.inputKeys()));
        hooks.forEach(h -> readers.add(h.inputKeys()));
        for (List<String> inputs : readers) {
            for (String k : inputs) {
                if (dropped.contains(k)) {
                    throw new IllegalArgumentException("algorithm " + algorithm + ": key '" + k
                            + "' comes from the training of a frozen model " + frozen);
                }
            }
        }
        return new DataflowGraph(algorithm, kept, hooks);
    }

    /** This graph with every train call passing {@code epochs} times over its mini-batches. */
    public DataflowGraph withEpochs(int epochs) {
        List<ModelCall> out = new ArrayList<>();
        for (ModelCall c : calls) {
            out.add(c.kind() == CallKind.TRAIN ? c.withEpochs(epochs) : c);
        }
        return new DataflowGraph(algorithm, out, hooks);
    }

    /** A role is trainable when some call trains it. */
    public boolean isTrainable(String role) {
        for (ModelCall c : calls) {
            if (c.role().equals(role) && c.kind() == CallKind.TRAIN) {
                return true;
            }
        }
        return false;
    }

    /** Calls on {@code role}, in topological order: the order in which they see its parameters. */
    public List<Integer> callsOnRole(String role) {
        List<Integer> r = new ArrayList<>();
        for (int i : order) {
            if (calls.get(i).role().equals(role)) {
                r.add(i);
            }
        }
        return r;
    }

    /**
     * The call whose layout holds a role's parameters between iterations: its (first) TRAIN call for a
     * trainable role, its first call otherwise. Any other call on the role whose layout differs gets the
     * parameters by reallocation from this one.
     */
    public int homeCall(String role) {
        List<Integer> on = callsOnRole(role);
        for (int i : on) {
            if (calls.get(i).kind() == CallKind.TRAIN) {
                return i;
            }
        }
        return on.get(0);
    }

    /** Per key, the index of the call that writes it. */
    public Map<String, Integer> producers() {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < calls.size(); i++) {
            for (String k : calls.get(i).outputKeys()) {
                m.put(k, i);
            }
        }
        return m;
    }

    @Override
    public String toString() {
        return "DataflowGraph[" + algorithm + ", " + calls.size() + " calls, " + hooks.size() + " hooks]";
    }
}
