package org.sparkrlhf.gpuexec.cuda;

/**
 * The deadlines of a non-blocking NCCL communicator: NCCL itself never times out, so a rank whose
 * peer died or never joined would otherwise wait forever in its communicator's set-up, in a
 * collective's enqueue (connections are made on first use) or in the stream synchronisation after
 * it, where no Spark task kill can reach it. Each wait here polls the communicator's asynchronous
 * state ({@code ncclCommGetAsyncError}) and, for a stream wait, the stream ({@code cuStreamQuery}),
 * and aborts the communicator ({@code ncclCommAbort}, which makes every later operation on it fail)
 * on an error or when the deadline passes. The three calls come through {@link Polled}, so that the
 * loop runs, and is tested, without a GPU.
 */
final class NcclDeadline {
    static final int SUCCESS = 0;
    /** ncclInProgress: a non-blocking operation has not completed yet. */
    static final int IN_PROGRESS = 7;
    /** cuStreamQuery's answer while work is queued. */
    static final int CUDA_ERROR_NOT_READY = 600;
    /** ncclResult_t's names, by value (nccl.h); an NCCL error string needs the library, these do not. */
    private static final String[] RESULTS = {"ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError",
            "ncclInternalError", "ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress",
            "ncclTimeout"};
    /** Busy polls before the loop sleeps a millisecond between polls: most operations end in the first few ms. */
    private static final int SPINS = 10_000;

    /** The native calls a wait polls: one communicator and its stream. */
    interface Polled {
        /** ncclCommGetAsyncError's state of the communicator (or the call's own failure). */
        int asyncError();

        /** cuStreamQuery of the communicator's stream: 0 done, {@value #CUDA_ERROR_NOT_READY} running. */
        int streamQuery();

        /** ncclCommAbort. */
        void abort();
    }

    private NcclDeadline() {
    }

    /**
     * Waits until the communicator's state leaves ncclInProgress (its set-up, or an operation that
     * returned ncclInProgress, has completed), at most {@code timeoutMillis}. {@code who} ("NCCL rank
     * 1 of 4") and {@code step} (what did not complete, and on whom it waits) name the failure.
     */
    static void awaitReady(Polled comm, long timeoutMillis, String who, String step) {
        await(comm, timeoutMillis, who, step, false);
    }

    /** Waits until the work queued on the communicator's stream has finished, failing as {@link #awaitReady}. */
    static void awaitStream(Polled comm, long timeoutMillis, String who, String step) {
        await(comm, timeoutMillis, who, step, true);
    }

    private static void await(Polled comm, long timeoutMillis, String who, String step, boolean stream) {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        for (long polls = 0; ; polls++) {
            int state = comm.asyncError();
            if (state != SUCCESS && state != IN_PROGRESS) {
                comm.abort();
                throw new IllegalStateException(who + ": " + step + " failed: " + name(state)
                        + "; the communicator was aborted");
            }
            if (stream) {
                int done = comm.streamQuery();
                if (done == SUCCESS) {
                    return;
                }
                if (done != CUDA_ERROR_NOT_READY) {
                    comm.abort();
                    throw new IllegalStateException(who + ": " + step + ": the stream failed with CUresult " + done
                            + "; the communicator was aborted");
                }
            } else if (state == SUCCESS) {
                return;
            }
            if (System.nanoTime() - deadline > 0) {
                comm.abort();
                throw new IllegalStateException(who + ": " + step + " did not complete within " + timeoutMillis
                        + " ms (spark.rlhf.comm.timeoutMs); the communicator was aborted");
            }
            if (polls < SPINS) {
                Thread.onSpinWait();
                continue;
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                comm.abort();
                Thread.currentThread().interrupt();
                throw new IllegalStateException(who + ": interrupted while waiting for " + step
                        + "; the communicator was aborted", e);
            }
        }
    }

    /** ncclResult_t {@code result} by name, e.g. "ncclRemoteError (6)". */
    static String name(int result) {
        return (result >= 0 && result < RESULTS.length ? RESULTS[result] : "ncclResult_t") + " (" + result + ")";
    }
}
