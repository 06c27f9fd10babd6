package org.sparkrlhf.jobs.train;

import org.apache.spark.SparkException;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.jobs.calls.ClearModelsCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;

import java.io.PrintStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * In-job recovery: which failures a restart from the newest checkpoint can cure, how many restarts
 * a run has left, and what each one leaves behind (see {@link TrainCommand#train}). A restart is
 * exact because a resumed run is: the data order, the sampling seeds and the optimizer state come
 * from the checkpoint, and the tables skip the iterations they already hold.
 */
final class Recovery {
    private final int maxRestarts;
    private int restarts;

    Recovery(int maxRestarts) {
        this.maxRestarts = maxRestarts;
    }

    int restarts() {
        return restarts;
    }

    /**
     * Whether a restart can cure {@code failure}: a Spark stage that failed (a lost executor, a task
     * that died) or a model copy that a lost executor took with it. A bad config or input fails the
     * same way again and is not retried; neither is a failure of the driver itself.
     */
    static boolean curable(Throwable failure) {
        for (Throwable c = failure; c != null; c = c.getCause()) {
            if (c instanceof SparkException) {
                return true;
            }
            String m = c.getMessage();
            if (m != null && (m.contains("(lost executor?)") || m.contains("is not in this executor"))) {
                return true;
            }
            if (c.getCause() == c) {
                break;
            }
        }
        return false;
    }

    /**
     * Counts a restart after {@code f} when it is curable and restarts are left, saying so on
     * {@code progress} and in the run's metrics table (at the failed iteration: {@code recovery/restart},
     * its number); false otherwise.
     */
    boolean restart(SparkSession spark, RunConfig config, RunFailure f, PrintStream progress) {
        if (!curable(f.getCause()) || restarts >= maxRestarts) {
            if (maxRestarts > 0 && curable(f.getCause())) {
                progress.printf("recovery: %d restarts used (recovery.max_restarts), giving up%n", restarts);
            }
            return false;
        }
        restarts++;
        IterationTable.metrics(spark, RunOutput.metricsPath(RunOutput.create(config))).appendEvent(config.name(),
                f.iteration(), List.of(new MetricRow("recovery/restart", restarts, Instant.now())));
        progress.printf("recovery: restart %d/%d after iteration %d failed (%s); resuming from the newest checkpoint%n",
                restarts, maxRestarts, f.iteration(), firstLine(f.getCause()));
        return true;
    }

    /** Drops every copy of the run's models from the executors that survived. */
    void clearModels(BarrierCallRunner runner, ClusterInventory inventory, RunConfig config) {
        List<String> roles = List.copyOf(RunScenario.graph(config).roles());
        List<ClearModelsCall.Request> requests = new ArrayList<>();
        for (int i = 0; i < inventory.size(); i++) {
            requests.add(new ClearModelsCall.Request(roles));
        }
        runner.run("clear_models", "recovery: clear the run's models from the executors", inventory.devices(), requests,
                new ClearModelsCall());
    }

    private static String firstLine(Throwable t) {
        String m = String.valueOf(t.getMessage());
        int nl = m.indexOf('\n');
        return t.getClass().getSimpleName() + ": " + (nl < 0 ? m : m.substring(0, nl));
    }
}
