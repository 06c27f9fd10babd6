package org.sparkrlhf.jobs.runtime;

import org.sparkrlhf.jobs.plan.Placement;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Runs the model function calls of one iteration on the driver: a call starts once the calls it
 * depends on have finished and no running call uses any of its devices; calls on disjoint devices
 * run at the same time, each from its own thread (so each is its own Spark job, in its own job
 * group). This is the list scheduling the planner's simulator assumes.
 */
public final class CallScheduler implements AutoCloseable {
    /**
     * A call to run: its name, the calls it waits for, the devices it uses, and its work. The devices
     * are asked for once the calls it waits for are done: a call that moves a model first uses the
     * devices that send it, which depend on where the earlier calls left the model.
     */
    public record Call(String name, List<String> after, Supplier<Set<Integer>> devices, Callable<?> work) {
        public Call {
            after = List.copyOf(after);
        }

        /** A call on fixed devices. */
        public Call(String name, List<String> after, Set<Integer> devices, Callable<?> work) {
            this(name, after, constant(Set.copyOf(devices)), work);
        }

        /** A call on {@code placement}'s devices. */
        public Call(String name, List<String> after, Placement placement, Callable<?> work) {
            this(name, after, deviceSet(placement), work);
        }

        private static Supplier<Set<Integer>> constant(Set<Integer> devices) {
            return () -> devices;
        }

        private static Set<Integer> deviceSet(Placement placement) {
            Set<Integer> out = new HashSet<>();
            for (int d : placement.deviceIndices()) {
                out.add(d);
            }
            return out;
        }
    }

    /**
     * A finished call: what it returned, and when its work started and ended ({@link System#nanoTime}
     * on the driver), so that the schedule a run executed can be set beside the simulator's.
     */
    public record Outcome(Object value, long startNanos, long endNanos) {
        /** Its wall seconds. */
        public double seconds() {
            return (endNanos - startNanos) / 1e9;
        }
    }

    private final ExecutorService threads;

    public CallScheduler(int maxConcurrentCalls) {
        ThreadPoolExecutor pool = new ThreadPoolExecutor(maxConcurrentCalls, maxConcurrentCalls, 0L, TimeUnit.MILLISECONDS,
                new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "spark-rlhf-call");
            t.setDaemon(true);
            return t;
        });
        // Every thread exists before the first call: a call started next to a running one wakes an idle
        // thread at once, where a thread created then waits behind the busy engine threads for a slice
        // of CPU (Linux places a new thread at the end of the queue; a woken one near its front), which
        // on a 2-core machine delayed a call's start by milliseconds, past the end of the call beside it.
        pool.prestartAllCoreThreads();
        this.threads = pool;
    }

    /**
     * Runs all {@code calls}; returns each call's outcome by name, in the order the calls finished.
     * The first call that fails stops the others (running ones are interrupted, which cancels their
     * Spark jobs) and its exception is thrown (a checked one wrapped in an IllegalStateException).
     */
    public Map<String, Outcome> runAll(List<Call> calls) {
        Map<String, Call> byName = new LinkedHashMap<>();
        for (Call c : calls) {
            if (byName.put(c.name(), c) != null) {
                throw new IllegalArgumentException("call " + c.name() + " given twice");
            }
        }
        for (Call c : calls) {
            for (String dep : c.after()) {
                if (!byName.containsKey(dep)) {
                    throw new IllegalArgumentException("call " + c.name() + " waits for unknown call " + dep);
                }
            }
        }
        List<Call> waiting = new ArrayList<>(calls);
        Set<String> done = new HashSet<>();
        Map<Future<Outcome>, Call> running = new HashMap<>();
        Map<String, Set<Integer>> devicesOf = new HashMap<>();
        Set<Integer> busy = new HashSet<>();
        Map<String, Outcome> outcomes = new LinkedHashMap<>();
        ExecutorCompletionService<Outcome> completions = new ExecutorCompletionService<>(threads);
        try {
            while (!waiting.isEmpty() || !running.isEmpty()) {
                for (Call c : new ArrayList<>(waiting)) {
                    if (!done.containsAll(c.after())) {
                        continue;
                    }
                    Set<Integer> devices = devicesOf.computeIfAbsent(c.name(), n -> Set.copyOf(c.devices().get()));
                    if (disjoint(busy, devices)) {
                        waiting.remove(c);
                        busy.addAll(devices);
                        running.put(completions.submit(() -> timed(c)), c);
                    }
                }
                if (running.isEmpty()) {
                    List<String> names = waiting.stream().map(Call::name).toList();
                    throw new IllegalArgumentException("calls " + names + " can never start: their dependencies form a cycle");
                }
                Future<Outcome> finished;
                try {
                    finished = completions.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while calls " + running.values().stream()
                            .map(Call::name).toList() + " ran", e);
                }
                Call c = running.remove(finished);
                busy.removeAll(devicesOf.get(c.name()));
                try {
                    outcomes.put(c.name(), finished.get());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while call " + c.name() + " ran", e);
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    if (cause instanceof RuntimeException ex) {
                        throw ex;
                    }
                    if (cause instanceof Error err) {
                        throw err;
                    }
                    throw new IllegalStateException("call " + c.name() + " failed: " + cause.getMessage(), cause);
                }
                done.add(c.name());
            }
            return outcomes;
        } finally {
            for (Future<Outcome> f : running.keySet()) {
                f.cancel(true);
            }
        }
    }

    private static Outcome timed(Call c) throws Exception {
        long start = System.nanoTime();
        Object value = c.work().call();
        return new Outcome(value, start, System.nanoTime());
    }

    private static boolean disjoint(Set<Integer> a, Set<Integer> b) {
        for (Integer x : b) {
            if (a.contains(x)) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() {
        threads.shutdownNow();
    }
}
