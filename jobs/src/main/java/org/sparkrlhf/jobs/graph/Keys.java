package org.sparkrlhf.jobs.graph;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One iteration's batch, by the keys of the algorithm's graph ({@code packed_prompts},
 * {@code packed_input_ids}, {@code rewards}, ...), plus what each call reported (its result, by call
 * name), the seconds each call and reallocation took, and when each call and hook ran. Calls and hooks on different threads read
 * and write it, so every method is synchronized; values are never changed once written.
 */
public final class Keys {
    private final int iteration;
    private final Map<String, Object> values = new LinkedHashMap<>();
    private final Map<String, Object> results = new LinkedHashMap<>();
    private final Map<String, Double> seconds = new LinkedHashMap<>();
    private final Map<String, Double> figures = new LinkedHashMap<>();
    private final List<CallSpan> spans = new ArrayList<>();

    public Keys(int iteration) {
        this.iteration = iteration;
    }

    public int iteration() {
        return iteration;
    }

    public synchronized void put(String key, Object value) {
        if (value == null) {
            throw new IllegalArgumentException("key '" + key + "': no value");
        }
        if (values.putIfAbsent(key, value) != null) {
            throw new IllegalStateException("key '" + key + "' is written twice in iteration " + iteration);
        }
    }

    public synchronized boolean has(String key) {
        return values.containsKey(key);
    }

    /** The value of {@code key}, which must be there and be a {@code type}. */
    public synchronized <T> T get(String key, Class<T> type) {
        Object v = values.get(key);
        if (v == null) {
            throw new IllegalStateException("key '" + key + "' is not in iteration " + iteration + "'s batch (it has "
                    + values.keySet() + ")");
        }
        if (!type.isInstance(v)) {
            throw new IllegalStateException("key '" + key + "' holds a " + v.getClass().getSimpleName() + ", not a "
                    + type.getSimpleName());
        }
        return type.cast(v);
    }

    /** What call {@code call} reported (a train call's loss and step, for instance). */
    public synchronized void putResult(String call, Object result) {
        results.put(call, result);
    }

    /** Whether call {@code call} reported a result (a call the run's graph does not have never does). */
    public synchronized boolean hasResult(String call) {
        return results.containsKey(call);
    }

    public synchronized <T> T result(String call, Class<T> type) {
        Object v = results.get(call);
        if (v == null) {
            throw new IllegalStateException("call " + call + " has no result in iteration " + iteration);
        }
        return type.cast(v);
    }

    /** Adds {@code s} seconds to the figure {@code name} ({@code seconds/<name>} in the metrics table). */
    public synchronized void addSeconds(String name, double s) {
        seconds.merge(name, s, Double::sum);
    }

    /** Sets a figure of the iteration that a call measured (the metrics table's {@code name}, and the progress line). */
    public synchronized void putFigure(String name, double value) {
        figures.put(name, value);
    }

    /** The figures the calls measured, in the order they were first set. */
    public synchronized Map<String, Double> figures() {
        return new LinkedHashMap<>(figures);
    }

    /** Adds a reallocation's seconds ({@code seconds/realloc}); none ran when {@code s} is 0. */
    public void addRealloc(double s) {
        if (s > 0) {
            addSeconds("realloc", s);
        }
    }

    /** The seconds of the calls, hooks and reallocations so far, in the order they were first reported. */
    public synchronized Map<String, Double> seconds() {
        return new LinkedHashMap<>(seconds);
    }

    /** Records when a call or hook of the iteration ran. */
    public synchronized void addSpan(CallSpan span) {
        spans.add(span);
    }

    /** The iteration's calls and hooks as they ran, by start time: the schedule the run executed. */
    public synchronized List<CallSpan> schedule() {
        List<CallSpan> out = new ArrayList<>(spans);
        out.sort(Comparator.comparingLong(CallSpan::startNanos));
        return out;
    }
}
