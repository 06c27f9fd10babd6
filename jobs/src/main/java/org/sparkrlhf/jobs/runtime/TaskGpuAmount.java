package org.sparkrlhf.jobs.runtime;

import java.util.Map;

/**
 * {@value #KEY} must be 1 when set. A fraction lets Spark run two tasks on one GPU at once, and both
 * would use the executor's one CUDA backend for that GPU (see the jobs executor's EngineBackends): one
 * stream, and one decode-graph capture in progress at a time, which a second thread's ops would
 * corrupt or break; more than one GPU per task is not how a rank runs (one rank per GPU). Refused
 * before Spark starts, with what to set instead.
 */
public final class TaskGpuAmount {
    public static final String KEY = "spark.task.resource.gpu.amount";

    private TaskGpuAmount() {
    }

    /**
     * Checks the value the application will run with, before it starts: the run config's Spark conf,
     * else spark-submit's (which it passes to the driver as system properties).
     *
     * @throws IllegalArgumentException when that value is not 1
     */
    public static void checkBeforeSpark(Map<String, String> runConf) {
        String value = runConf.get(KEY);
        check(value != null ? value : System.getProperty(KEY));
    }

    /**
     * @param value the setting as given (null: not set, which is fine)
     * @throws IllegalArgumentException when it is not 1, saying why and what to set
     */
    public static void check(String value) {
        if (value == null) {
            return;
        }
        double amount;
        try {
            amount = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(KEY + "='" + value + "' is not a number; set " + KEY + "=1");
        }
        if (amount == 1) {
            return;
        }
        if (amount > 0 && amount < 1) {
            throw new IllegalArgumentException(KEY + "=" + value.trim() + " would run two tasks on one GPU at once, and "
                    + "they would share its CUDA backend, which one thread at a time may use (one stream, one decode "
                    + "graph captured at a time); set " + KEY + "=1: a rank needs a GPU to itself");
        }
        throw new IllegalArgumentException(KEY + "=" + value.trim() + ": a rank runs on exactly one GPU; set " + KEY + "=1");
    }
}
