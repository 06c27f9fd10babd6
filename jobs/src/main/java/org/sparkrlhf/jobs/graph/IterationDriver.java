package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.CallScheduler;
import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.DriverHook;
import org.sparkrlhf.planner.graph.ModelCall;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs one iteration of an algorithm's graph: every model call through its {@link CallBinding},
 * every driver hook through its {@link Hook}. A call or hook starts when the calls and hooks writing
 * the keys it reads are done, and (for a call) when the previous call on its model is done (a model's
 * calls run in the graph's order) and no running call uses any of its devices (those of its
 * placement and, when its model is moved there first, those that send it); calls on disjoint
 * devices run at the same time ({@link CallScheduler}). Hooks use no devices. The
 * iteration ends when every call and hook is done: the next iteration's calls start after it (the
 * simulator models the same barrier between iterations). Each call reports the seconds of its stage
 * and of the reallocation before it ({@code realloc}); each hook's seconds are measured here.
 */
public final class IterationDriver {
    private final DataflowGraph graph;
    private final Map<String, CallBinding> bindings;
    private final Map<String, Hook> hooks;

    /** {@code bindings} by call name and {@code hooks} by hook name; every call and hook of the graph needs one. */
    public IterationDriver(DataflowGraph graph, Map<String, CallBinding> bindings, Map<String, Hook> hooks) {
        for (ModelCall c : graph.calls()) {
            if (!bindings.containsKey(c.name())) {
                throw new IllegalArgumentException(graph.algorithm() + ": call " + c.name() + " has no executor function");
            }
        }
        for (DriverHook h : graph.hooks()) {
            if (!hooks.containsKey(h.name())) {
                throw new IllegalArgumentException(graph.algorithm() + ": hook " + h.name() + " has no implementation");
            }
        }
        this.graph = graph;
        this.bindings = Map.copyOf(bindings);
        this.hooks = Map.copyOf(hooks);
    }

    public DataflowGraph graph() {
        return graph;
    }

    /** Runs every call and hook of the graph on {@code keys}, which holds the dataset's keys. */
    public void run(RunContext run, Keys keys, CallScheduler scheduler) {
        for (String k : graph.datasetKeys()) {
            if (!keys.has(k)) {
                throw new IllegalStateException(graph.algorithm() + ": the dataset gave no '" + k + "'");
            }
        }
        List<CallScheduler.Call> work = new ArrayList<>();
        for (ModelCall c : graph.calls()) {
            Placement at = run.placement(c.name());
            CallBinding binding = bindings.get(c.name());
            List<String> after = new ArrayList<>(after(c.inputKeys()));
            ModelCall previous = previousOnRole(c);
            if (previous != null && !after.contains(previous.name())) {
                after.add(previous.name());
            }
            boolean trains = c.kind() == CallKind.TRAIN;
            work.add(new CallScheduler.Call(c.name(), after, () -> run.models().devices(c.role(), at, trains), () -> {
                binding.run(run, c, at, keys);
                return null;
            }));
        }
        for (DriverHook h : graph.hooks()) {
            Hook hook = hooks.get(h.name());
            work.add(new CallScheduler.Call(h.name(), after(h.inputKeys()), Set.of(), () -> {
                hook.run(run, h, keys);
                return null;
            }));
        }
        for (Map.Entry<String, CallScheduler.Outcome> e : scheduler.runAll(work).entrySet()) {
            keys.addSpan(new CallSpan(e.getKey(), !bindings.containsKey(e.getKey()), e.getValue().startNanos(),
                    e.getValue().endNanos()));
            // a call reports its own stage's seconds (its reallocation apart); a hook is timed here
            if (!bindings.containsKey(e.getKey())) {
                keys.addSeconds(e.getKey(), e.getValue().seconds());
            }
        }
        for (ModelCall c : graph.calls()) {
            for (String k : c.outputKeys()) {
                check(keys, c.name(), k);
            }
        }
        for (DriverHook h : graph.hooks()) {
            for (String k : h.outputKeys()) {
                check(keys, h.name(), k);
            }
        }
    }

    /** The call on {@code c}'s model before it in the graph's order, or null. */
    private ModelCall previousOnRole(ModelCall c) {
        ModelCall previous = null;
        for (int i : graph.callsOnRole(c.role())) {
            if (graph.call(i) == c) {
                return previous;
            }
            previous = graph.call(i);
        }
        throw new IllegalStateException(c.name() + " is not on " + c.role());
    }

    /** The calls and hooks that write {@code inputs}. */
    private List<String> after(List<String> inputs) {
        Set<String> out = new LinkedHashSet<>();
        for (String k : inputs) {
            String p = graph.producerOf(k);
            if (p != null) {
                out.add(p);
            }
        }
        return List.copyOf(out);
    }

    private static void check(Keys keys, String writer, String key) {
        if (!keys.has(key)) {
            throw new IllegalStateException(writer + " did not write '" + key + "'");
        }
    }
}
