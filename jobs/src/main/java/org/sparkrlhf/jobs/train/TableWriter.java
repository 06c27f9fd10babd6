package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.datasets.tables.RolloutRow;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * Writes a run's Delta tables (rollouts, metrics, plans) off the iteration's critical path: an
 * iteration hands its rows over and goes on while a writer thread commits them, per table in one go,
 * every iteration handed over since its last commits ({@link IterationTable#appendIterations}:
 * atomic, idempotent, each iteration's rows once).
 *
 * <p>The tables are created before the writer starts, before the run's first iteration: the creation
 * is the first Spark SQL of the application (a few seconds of Catalyst, Janino and Parquet, and the
 * JIT compiling them, 14-17 s on two cores in a new JVM), and run beside the first iterations it took
 * their cores. The writer commits at most every {@code commitSeconds} (the run's
 * {@value #COMMIT_SECONDS}, default {@value #DEFAULT_COMMIT_SECONDS}), and at once when a checkpoint
 * or the end of the run waits for it ({@link #awaitWritten}) or half of {@value #MAX_QUEUED}
 * iterations wait. A Delta commit costs about a second of the driver's CPU (0.8-1.5 s per table on
 * two cores, of which half is Delta's replay of its log to check the idempotent write's version):
 * committing as fast as it could, the writer was busy for the whole GRPO example and its work, beside
 * the calls on the same two cores, made an iteration 1.5x as long (0.74 s against 0.48 s at 512
 * sequences). Measured on the embedded GRPO run of 64 x 8 rows, 60 iterations: with the tables
 * created beside the first iterations and a commit every 16 (the queue's half, then 32), the JIT
 * compiled for 28.6 s during the 24 s of iterations and an iteration took 0.34 s (median); with the
 * tables created first and commits by the clock, 6.8 s and 0.16 s.
 *
 * <p>{@link #awaitWritten} returns once everything handed over is committed: the driver calls it
 * before a checkpoint (a resumed run starts after its checkpoint, so the tables must hold every
 * iteration up to it) and at the end. At most {@value #MAX_QUEUED} iterations wait: a run whose
 * tables fall that far behind waits in {@link #append}. A failed commit fails the next
 * {@link #append} or {@link #awaitWritten}.
 */
final class TableWriter implements AutoCloseable {
    static final int MAX_QUEUED = 256;
    /** The run's Spark conf key for the seconds between commits. */
    static final String COMMIT_SECONDS = "spark.rlhf.tablesCommitSeconds";
    static final double DEFAULT_COMMIT_SECONDS = 30;

    /** The seconds between commits: the run's Spark conf, else the JVM's system property, else the default. */
    static double commitSeconds(Map<String, String> sparkConf) {
        return Double.parseDouble(sparkConf.getOrDefault(COMMIT_SECONDS,
                System.getProperty(COMMIT_SECONDS, Double.toString(DEFAULT_COMMIT_SECONDS))));
    }

    /** One iteration's rows; plan is null for the evaluation before training. */
    private record IterationRows(long iteration, List<RolloutRow> rollouts, List<MetricRow> metrics, PlanRow plan) {
    }

    private final String runId;
    private final IterationTable<RolloutRow> rollouts;
    private final IterationTable<MetricRow> metrics;
    private final IterationTable<PlanRow> plans;
    private final Thread thread;
    private final long commitEveryNanos;
    /** When the last commits ended (at first: when the writer started). */
    private long lastCommitNanos;
    /** Set by {@link #awaitWritten}: commit what is queued now, whatever the cadence. */
    private boolean flushRequested;
    private final List<IterationRows> queued = new ArrayList<>();
    private boolean writing;
    private boolean closed;
    private RuntimeException failure;

    /**
     * Creates the tables that do not exist yet and starts the writer.
     *
     * @param writesRollouts whether the algorithm has a rollouts table
     * @param commitSeconds  the least seconds between two rounds of commits (0: as soon as rows come)
     */
    TableWriter(SparkSession spark, String output, String runId, boolean writesRollouts, double commitSeconds) {
        if (!(commitSeconds >= 0)) {
            throw new IllegalArgumentException(COMMIT_SECONDS + ": expected seconds >= 0, got " + commitSeconds);
        }
        this.runId = runId;
        this.rollouts = writesRollouts ? IterationTable.rollouts(spark, RunOutput.rolloutsPath(output)) : null;
        this.metrics = IterationTable.metrics(spark, RunOutput.metricsPath(output));
        this.plans = IterationTable.plans(spark, RunOutput.plansPath(output));
        this.commitEveryNanos = (long) (commitSeconds * 1e9);
        try {
            for (IterationTable<?> t : new IterationTable<?>[]{rollouts, metrics, plans}) {
                if (t != null) {
                    t.createIfAbsent();
                }
            }
        } catch (RuntimeException e) {
            throw new IllegalStateException("creating the run's tables failed: " + e.getMessage(), e);
        }
        // the first round waits like the others: its cold start (the write path compiled, 3-5 s on two
        // cores) would otherwise run beside the first iterations
        this.lastCommitNanos = System.nanoTime();
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
        flushRequested = true;
        notifyAll();
        try {
            while ((!queued.isEmpty() || writing) && failure == null) {
                waitQuietly();
            }
        } finally {
            flushRequested = false;
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
                while (!closed && (queued.isEmpty() || !due())) {
                    // nothing queued: until rows come; rows queued: until they are due
                    waitQuietly(queued.isEmpty() ? 0
                            : Math.max(1, (lastCommitNanos + commitEveryNanos - System.nanoTime()) / 1_000_000));
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
                lastCommitNanos = System.nanoTime();
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

    /** Whether the queued iterations are to be committed now. */
    private boolean due() {
        return flushRequested || queued.size() >= MAX_QUEUED / 2
                || System.nanoTime() - lastCommitNanos >= commitEveryNanos;
    }

    private void throwFailure() {
        if (failure != null) {
            throw failure;
        }
    }

    private void waitQuietly() {
        waitQuietly(0);
    }

    /** Waits until notified or {@code millis} have passed (0: until notified). */
    private void waitQuietly(long millis) {
        try {
            wait(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while the run's tables were written", e);
        }
    }
}
