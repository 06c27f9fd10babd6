package org.sparkrlhf.gpuexec.cuda;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;

/**
 * One rank's NCCL communicator on one stream. The unique id is made by rank 0 and handed to the
 * others out of band (on Spark, through BarrierTaskContext.allGather) as 128 bytes.
 *
 * <p>The operations only queue work on the stream. {@link #await} waits for it with a deadline:
 * NCCL itself never times out, so a peer that died would otherwise leave this rank blocked in a
 * stream synchronization that no Spark task kill can interrupt.
 */
public final class NcclCommunicator implements AutoCloseable {
    private final CudaStream stream;
    private final Pointer comm;
    public final int ranks;
    public final int rank;
    /** Destroyed or aborted: the handle is gone. */
    private boolean released;

    /** NCCL's version as a number, e.g. 22803 for 2.28.3. */
    public static int version() {
        int[] v = {0};
        Nccl.check(Nccl.lib().ncclGetVersion(v), "ncclGetVersion");
        return v[0];
    }

    public static byte[] newUniqueId() {
        Nccl.UniqueId id = new Nccl.UniqueId();
        Nccl.check(Nccl.lib().ncclGetUniqueId(id), "ncclGetUniqueId");
        id.read();
        return id.internal.clone();
    }

    public NcclCommunicator(CudaStream stream, int ranks, byte[] uniqueId, int rank) {
        if (uniqueId.length != 128) throw new IllegalArgumentException("an NCCL unique id is 128 bytes, not " + uniqueId.length);
        if (rank < 0 || rank >= ranks) throw new IllegalArgumentException("rank " + rank + " of " + ranks);
        this.stream = stream;
        this.ranks = ranks;
        this.rank = rank;
        stream.context.makeCurrent();
        Nccl.UniqueId.ByValue id = new Nccl.UniqueId.ByValue();
        System.arraycopy(uniqueId, 0, id.internal, 0, 128);
        id.write();
        PointerByReference c = new PointerByReference();
        Nccl.check(Nccl.lib().ncclCommInitRank(c, ranks, id, rank), "ncclCommInitRank");
        comm = c.getValue();
    }

    private static int ncclType(ElementType t) {
        return switch (t) {
            case F32 -> Nccl.FLOAT32;
            case BF16 -> Nccl.BFLOAT16;
            case I32 -> Nccl.INT32;
        };
    }

    /** In-place sum over ranks of {@code count} elements. */
    public void allReduceSum(CudaBuffer buf, long count, ElementType type) {
        requireOpen();
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclAllReduce(buf.address, buf.address, count, ncclType(type), Nccl.SUM, comm,
                stream.handle), "ncclAllReduce");
    }

    public void broadcast(CudaBuffer buf, long count, ElementType type, int root) {
        requireOpen();
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclBroadcast(buf.address, buf.address, count, ncclType(type), root, comm,
                stream.handle), "ncclBroadcast");
    }

    public void send(CudaBuffer buf, long count, ElementType type, int peer) {
        requireOpen();
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclSend(buf.address, count, ncclType(type), peer, comm, stream.handle), "ncclSend");
    }

    public void receive(CudaBuffer buf, long count, ElementType type, int peer) {
        requireOpen();
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclRecv(buf.address, count, ncclType(type), peer, comm, stream.handle), "ncclRecv");
    }

    /**
     * Opens a group: the sends and receives issued until {@link #groupEnd} are started together, so
     * that two ranks that each send to and receive from the other cannot deadlock on the order.
     */
    public static void groupStart() {
        Nccl.check(Nccl.lib().ncclGroupStart(), "ncclGroupStart");
    }

    /** Closes the group opened by {@link #groupStart} and launches its operations. */
    public static void groupEnd() {
        Nccl.check(Nccl.lib().ncclGroupEnd(), "ncclGroupEnd");
    }

    /**
     * Waits until the work queued on this communicator's stream so far has finished. Fails, and
     * aborts the communicator (which makes every later operation on it fail too), when NCCL reports
     * an asynchronous error (a peer's connection broke) or the work has not finished within
     * {@code timeoutMillis}.
     */
    public void await(long timeoutMillis) {
        requireOpen();
        stream.context.makeCurrent();
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        long polls = 0;
        while (true) {
            int status = Nccl.driver().cuStreamQuery(stream.handle);
            if (status == Nccl.Driver.CUDA_SUCCESS) {
                return;
            }
            if (status != Nccl.Driver.CUDA_ERROR_NOT_READY) {
                throw new IllegalStateException("NCCL rank " + rank + " of " + ranks + ": the stream failed with CUresult " + status);
            }
            int[] async = {0};
            Nccl.check(Nccl.lib().ncclCommGetAsyncError(comm, async), "ncclCommGetAsyncError");
            if (async[0] != 0 && async[0] != Nccl.IN_PROGRESS) {
                String error = Nccl.lib().ncclGetErrorString(async[0]);
                abort();
                throw new IllegalStateException("NCCL rank " + rank + " of " + ranks + " failed: " + error);
            }
            if (System.nanoTime() > deadline) {
                abort();
                throw new IllegalStateException("NCCL rank " + rank + " of " + ranks + ": the operation did not finish within "
                        + timeoutMillis + " ms (a peer is gone or never joined); the communicator was aborted");
            }
            // spin for the first few milliseconds (most operations end there), then poll each millisecond
            if (polls++ < 10_000) {
                Thread.onSpinWait();
                continue;
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                abort();
                Thread.currentThread().interrupt();
                throw new IllegalStateException("NCCL rank " + rank + " of " + ranks + ": interrupted while waiting", e);
            }
        }
    }

    private void requireOpen() {
        if (released) {
            throw new IllegalStateException("NCCL rank " + rank + " of " + ranks + ": the communicator was closed or aborted");
        }
    }

    /** Tears the communicator down without waiting for its peers (after an error). */
    public void abort() {
        if (released) return;
        released = true;
        stream.context.makeCurrent();
        Nccl.lib().ncclCommAbort(comm);
    }

    @Override
    public void close() {
        if (released) return;
        released = true;
        stream.context.makeCurrent();
        Nccl.lib().ncclCommDestroy(comm);
    }
}
