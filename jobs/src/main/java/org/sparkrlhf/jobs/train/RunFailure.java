package org.sparkrlhf.jobs.train;

/**
 * A run that failed in an iteration, after its set-up: the iteration, and what failed. A recovering
 * run ({@link Recovery}) restarts from its newest checkpoint when the cause is one a retry can cure.
 */
public final class RunFailure extends RuntimeException {
    private final int iteration;

    public RunFailure(int iteration, RuntimeException cause) {
        super("iteration " + iteration + ": " + cause.getMessage(), cause);
        this.iteration = iteration;
    }

    public int iteration() {
        return iteration;
    }
}
