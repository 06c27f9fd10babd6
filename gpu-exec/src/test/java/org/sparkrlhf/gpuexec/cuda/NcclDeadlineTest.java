package org.sparkrlhf.gpuexec.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The deadlines of a non-blocking NCCL communicator without a GPU: fakes of its three native calls
 * (ncclCommGetAsyncError, cuStreamQuery, ncclCommAbort) that never complete, that fail, and that
 * complete after some polls. A wait that cannot end fails within its deadline (the class timeout
 * bounds it) naming the rank and the step, and aborts the communicator exactly once.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class NcclDeadlineTest {
    private static final String WHO = "NCCL rank 1 of 4";

    /** A communicator whose async state and stream answer from fixed scripts (the last answer repeats). */
    private static final class Fake implements NcclDeadline.Polled {
        private final int[] states;
        private final int[] streams;
        private int stateCalls;
        private int streamCalls;
        int aborts;

        Fake(int[] states, int[] streams) {
            this.states = states;
            this.streams = streams;
        }

        @Override
        public int asyncError() {
            return states[Math.min(stateCalls++, states.length - 1)];
        }

        @Override
        public int streamQuery() {
            return streams[Math.min(streamCalls++, streams.length - 1)];
        }

        @Override
        public void abort() {
            aborts++;
        }
    }

    private static final int IN_PROGRESS = NcclDeadline.IN_PROGRESS;
    private static final int NOT_READY = NcclDeadline.CUDA_ERROR_NOT_READY;

    @Test
    void anInitThatNeverCompletesFailsAtItsDeadlineAndAborts() {
        Fake never = new Fake(new int[]{IN_PROGRESS}, new int[]{NOT_READY});
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NcclDeadline.awaitReady(never, 200, WHO, "ncclCommInitRankConfig (waiting for 4 ranks)"));
        assertEquals(WHO + ": ncclCommInitRankConfig (waiting for 4 ranks) did not complete within 200 ms "
                + "(spark.rlhf.comm.timeoutMs); the communicator was aborted", e.getMessage());
        assertEquals(1, never.aborts);
    }

    @Test
    void aStreamThatNeverFinishesFailsAtItsDeadlineNamingTheStep() {
        Fake stuck = new Fake(new int[]{NcclDeadline.SUCCESS}, new int[]{NOT_READY});
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NcclDeadline.awaitStream(stuck, 150, WHO, "exchange: sends to ranks [0], receives from ranks [2]"));
        assertEquals(WHO + ": exchange: sends to ranks [0], receives from ranks [2] did not complete within 150 ms "
                + "(spark.rlhf.comm.timeoutMs); the communicator was aborted", e.getMessage());
        assertEquals(1, stuck.aborts);
    }

    @Test
    void anAsyncErrorAbortsAtOnce() {
        // in progress twice, then a peer's connection breaks (ncclRemoteError)
        Fake broken = new Fake(new int[]{IN_PROGRESS, IN_PROGRESS, 6}, new int[]{NOT_READY});
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NcclDeadline.awaitReady(broken, 60_000, WHO, "ncclAllReduce of 8 F32"));
        assertEquals(WHO + ": ncclAllReduce of 8 F32 failed: ncclRemoteError (6); the communicator was aborted",
                e.getMessage());
        assertEquals(1, broken.aborts);

        Fake duringSync = new Fake(new int[]{NcclDeadline.SUCCESS, 2}, new int[]{NOT_READY});
        e = assertThrows(IllegalStateException.class,
                () -> NcclDeadline.awaitStream(duringSync, 60_000, WHO, "all-reduce of 8 floats over 4 ranks"));
        assertTrue(e.getMessage().endsWith("all-reduce of 8 floats over 4 ranks failed: ncclSystemError (2); the "
                + "communicator was aborted"), e.getMessage());
        assertEquals(1, duringSync.aborts);

        Fake failedStream = new Fake(new int[]{NcclDeadline.SUCCESS}, new int[]{NOT_READY, 700});
        e = assertThrows(IllegalStateException.class,
                () -> NcclDeadline.awaitStream(failedStream, 60_000, WHO, "broadcast of 3 floats from rank 0"));
        assertEquals(WHO + ": broadcast of 3 floats from rank 0: the stream failed with CUresult 700; the communicator "
                + "was aborted", e.getMessage());
        assertEquals(1, failedStream.aborts);
    }

    @Test
    void operationsThatCompleteAfterSomePollsReturnWithoutAnAbort() {
        Fake init = new Fake(new int[]{IN_PROGRESS, IN_PROGRESS, IN_PROGRESS, NcclDeadline.SUCCESS}, new int[]{NOT_READY});
        NcclDeadline.awaitReady(init, 60_000, WHO, "ncclCommInitRankConfig");
        assertEquals(0, init.aborts);
        assertEquals(4, init.stateCalls);
        Fake sync = new Fake(new int[]{NcclDeadline.SUCCESS}, new int[]{NOT_READY, NOT_READY, NcclDeadline.SUCCESS});
        NcclDeadline.awaitStream(sync, 60_000, WHO, "all-reduce");
        assertEquals(0, sync.aborts);
        assertEquals(3, sync.streamCalls);
    }

    @Test
    void resultsAreNamedAsInNcclH() {
        assertEquals("ncclInProgress (7)", NcclDeadline.name(7));
        assertEquals("ncclTimeout (8)", NcclDeadline.name(8));
        assertEquals("ncclResult_t (42)", NcclDeadline.name(42));
    }
}
