package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.datasets.tables.RolloutRow;

import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * Writes a run's Delta tables (rollouts, metrics, plans) off the iteration's critical path: an
 * iteration hands its rows over and goes on while a writer thread commits them. Three Delta commits
 * cost more than a small model's whole iteration on two cores, so the writer commits, per table in
 * one go, every iteration that finished while it made its last commits
 * ({@link IterationTable#appendIterations}: atomic, idempotent, each iteration's rows once).
 *
 * <p>{@link #awaitWritten} returns once everything handed over is committed: the driver calls it
 * before a checkpoint (a resumed run starts after its checkpoint, so the tables must hold every
 * iteration up to it) and at the end. At most {@value #MAX_QUEUED} iterations wait: a run whose
 * tables fall that far behind waits in {@link #append}. A failed commit fails the next
 * {@link #append} or {@link #awaitWritten}.
 */
final class TableWriter implements AutoCloseable {
    static final int MAX_QUEUED = 32;

    /** One iteration's rows; plan is null for the evaluation before training. */
    private record IterationRows(long iteration, List<RolloutRow> rollouts, List<MetricRow> metrics, PlanRow plan) {
    }

    private final String runId;
    private final IterationTable<RolloutRow> rollouts;
    private final IterationTable<MetricRow> metrics;
    private final IterationTable<PlanRow> plans;
    private final Thread thread;
    private final List<IterationRows> queued = new ArrayList<>();
    private boolean writing;
    private boolean closed;
    private RuntimeException failure;

    /** @param writesRollouts whether the algorithm has a rollouts table */
    TableWriter(SparkSession spark, String output, String runId, boolean writesRollouts) {
        this.runId = runId;
        this.rollouts = writesRollouts ? IterationTable.rollouts(spark, RunOutput.rolloutsPath(output)) : null;
        this.metrics = IterationTable.metrics(spark, RunOutput.metricsPath(output));
        this.plans = IterationTable.plans(spark, RunOutput.plansPath(output));
        this.thread = new Thread(this::writeLoop, "spark-rlhf-tables " + runId);
        thread.setDaemon(true);
        thread.start();
    }

    /** Hands an iteration's rows over (rollouts may be empty, plan null); waits while {@value #MAX_QUEUED} are queued. */
    synchronized void append(long iteration, List<RolloutRow> rolloutRows, List<MetricRow> metricRows, PlanRow plan) {
        while (queued.size() >= MAX_QUEUED && failure == null) {
            waitQuietly();
        }
        throwFailure();
        queued.add(new IterationRows(iteration, List.copyOf(rolloutRows), List.copyOf(metricRows), plan));
        notifyAll();
    }

    /** Returns once every iteration handed over is committed; throws the first failed commit. */
    synchronized void awaitWritten() {
        while ((!queued.isEmpty() || writing) && failure == null) {
            waitQuietly();
        }
        throwFailure();
    }

    /** Lets the writer finish what it holds (a failure is left to {@link #awaitWritten} to report) and stops it. */
    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            notifyAll();
        }
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void writeLoop() {
        while (true) {
            List<IterationRows> batch;
            synchronized (this) {
                while (queued.isEmpty() && !closed) {
                    waitQuietly();
                }
                if (queued.isEmpty() || failure != null) {
                    return;
                }
                batch = new ArrayList<>(queued);
                queued.clear();
                writing = true;
                notifyAll();
            }
            RuntimeException failed = null;
            try {
                write(rollouts, batch, IterationRows::rollouts);
                write(metrics, batch, IterationRows::metrics);
                write(plans, batch, r -> r.plan() == null ? List.of() : List.of(r.plan()));
            } catch (RuntimeException e) {
                failed = e;
            }
            synchronized (this) {
                writing = false;
                if (failed != null && failure == null) {
                    failure = failed;
                }
                notifyAll();
            }
        }
    }

    /** One commit of the batch's rows to a table; iterations without rows for it are left out. */
    private <T> void write(IterationTable<T> table, List<IterationRows> batch, Function<IterationRows, List<T>> rowsOf) {
        if (table == null) {
            return;
        }
        SortedMap<Long, List<T>> rows = new TreeMap<>();
        for (IterationRows r : batch) {
            List<T> of = rowsOf.apply(r);
            if (!of.isEmpty()) {
                rows.put(r.iteration(), of);
            }
        }
        if (rows.isEmpty()) {
            return;
        }
        try {
            table.appendIterations(runId, rows);
        } catch (RuntimeException e) {
            String iterations = rows.size() == 1 ? "iteration " + rows.firstKey()
                    : "iterations " + rows.firstKey() + "-" + rows.lastKey();
            throw new IllegalStateException("writing " + iterations + " to the " + table.layout().name() + " table "
                    + table.path() + " failed: " + e.getMessage(), e);
        }
    }

    private void throwFailure() {
        if (failure != null) {
            throw failure;
        }
    }

    private void waitQuietly() {
        try {
            wait();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while the run's tables were written", e);
        }
    }
}
