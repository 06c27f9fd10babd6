package org.sparkrlhf.jobs.train;

/**
 * A run that failed in an iteration, after its set-up: the iteration, and what failed. A recovering
 * run ({@link Recovery}) restarts from its newest checkpoint when the cause is one a retry can cure.
 */
public final class RunFailure extends RuntimeException {
    private final int iteration;

    public RunFailure(int iteration, Exception cause) {
        super("iteration " + iteration + ": " + cause.getMessage(), cause);
        this.iteration = iteration;
    }

    public int iteration() {
        return iteration;
    }

    /** What failed, as it was thrown when it is unchecked, else this failure. */
    public RuntimeException unwrapped() {
        return getCause() instanceof RuntimeException r ? r : this;
    }
}
