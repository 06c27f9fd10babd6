package org.sparkrlhf.gpuexec.cuda;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * One rank's NCCL communicator on one stream. The unique id is made by rank 0 and handed to the
 * others out of band (on Spark, over the call's authenticated TCP mesh) as 128 bytes.
 *
 * <p>The communicator is non-blocking ({@code ncclCommInitRankConfig} with {@code blocking = 0}):
 * its set-up, and any operation that NCCL cannot enqueue at once (connections are made on first
 * use), return ncclInProgress and complete in the background. Every such wait, and the stream
 * synchronisation after the operations ({@link #await}), has a deadline ({@link NcclDeadline}):
 * NCCL itself never times out, so a peer that died or never joined would otherwise leave this rank
 * blocked where no Spark task kill can interrupt it. On a timeout or an asynchronous error the
 * communicator is aborted and the error names the call, this rank and the step that did not complete.
 *
 * <p>The tensor operations work in place on a {@link CudaTensor}'s device memory, in the tensor's
 * own element type (bf16 as ncclBfloat16, so a bf16 tensor moves half the bytes and is summed by
 * NCCL in bf16), on a range of its elements so that callers can bound the size of one operation.
 * They are queued on the stream, like the backend's kernels: {@link #await} waits for them.
 */
public final class NcclCommunicator implements AutoCloseable {
    /** ncclCommInitRankConfig and the non-blocking mode came with NCCL 2.14. */
    static final int MIN_VERSION = 21400;
    /** The ten minutes spark.rlhf.comm.timeoutMs defaults to, for callers that give no deadline. */
    private static final long DEFAULT_TIMEOUT_MILLIS = 600_000;

    private final CudaStream stream;
    private final Pointer comm;
    private final long timeoutMillis;
    private final NcclDeadline.Polled polled;
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

    /** A communicator whose set-up and operations wait at most ten minutes. */
    public NcclCommunicator(CudaStream stream, int ranks, byte[] uniqueId, int rank) {
        this(stream, ranks, uniqueId, rank, DEFAULT_TIMEOUT_MILLIS);
    }

    /**
     * Joins the communicator of {@code ranks} ranks named by {@code uniqueId} as {@code rank}; fails,
     * having aborted it, when not every rank has joined within {@code timeoutMillis}, which also
     * bounds every later wait for an operation to be enqueued.
     */
    public NcclCommunicator(CudaStream stream, int ranks, byte[] uniqueId, int rank, long timeoutMillis) {
        if (uniqueId.length != 128) throw new IllegalArgumentException("an NCCL unique id is 128 bytes, not " + uniqueId.length);
        if (rank < 0 || rank >= ranks) throw new IllegalArgumentException("rank " + rank + " of " + ranks);
        if (timeoutMillis <= 0) throw new IllegalArgumentException("an NCCL deadline of " + timeoutMillis + " ms");
        int version = version();
        if (version < MIN_VERSION) {
            throw new IllegalStateException("NCCL " + version + " has no non-blocking communicators, which the "
                    + "deadlines on its calls need; install NCCL 2.14 or later");
        }
        this.stream = stream;
        this.ranks = ranks;
        this.rank = rank;
        this.timeoutMillis = timeoutMillis;
        // NCCL allocates its buffers with the driver, outside the pool: hand back what the pool holds
        // unused first (the pool keeps up to a quarter of the device after a training step)
        stream.context.trim();
        Nccl.UniqueId.ByValue id = new Nccl.UniqueId.ByValue();
        System.arraycopy(uniqueId, 0, id.internal, 0, 128);
        id.write();
        PointerByReference c = new PointerByReference();
        int status = Nccl.lib().ncclCommInitRankConfig(c, ranks, id, rank, nonBlockingConfig());
        if (status != NcclDeadline.SUCCESS && status != NcclDeadline.IN_PROGRESS) {
            // NCCL returns the handle even when its set-up fails; free what it holds
            if (c.getValue() != null) {
                Nccl.lib().ncclCommAbort(c.getValue());
            }
            Nccl.check(status, "NCCL rank " + rank + " of " + ranks + ": ncclCommInitRankConfig");
        }
        this.comm = c.getValue();
        this.polled = new NcclDeadline.Polled() {
            @Override
            public int asyncError() {
                int[] state = {0};
                int status = Nccl.lib().ncclCommGetAsyncError(comm, state);
                return status != NcclDeadline.SUCCESS ? status : state[0];
            }

            @Override
            public int streamQuery() {
                return Nccl.driver().cuStreamQuery(stream.handle);
            }

            @Override
            public void abort() {
                NcclCommunicator.this.abort();
            }
        };
        NcclDeadline.awaitReady(polled, timeoutMillis, who(), "ncclCommInitRankConfig (the communicator forms once "
                + "all " + ranks + " ranks have joined; one whose task failed or never started never does)");
    }

    /**
     * NCCL_CONFIG_INITIALIZER with {@code blocking = 0}, in the layout of NCCL 2.14's ncclConfig_t
     * (nccl.h's ncclConfig_v21400: size_t size, unsigned magic, unsigned version, int blocking, padded
     * to 24 bytes). Later NCCLs read a config by its size and version, giving the fields they added
     * their defaults, so this first layout is read alike by every version that has the call.
     */
    private static Pointer nonBlockingConfig() {
        Memory config = new Memory(24);
        config.clear();
        config.setLong(0, 24);                  // size
        config.setInt(8, 0xcafebeef);           // magic (NCCL_API_MAGIC)
        config.setInt(12, MIN_VERSION);         // version: the layout's, 2.14.0
        config.setInt(16, 0);                   // blocking
        return config;
    }

    private String who() {
        return "NCCL rank " + rank + " of " + ranks;
    }

    private static int ncclType(ElementType t) {
        return switch (t) {
            case F32 -> Nccl.FLOAT32;
            case BF16 -> Nccl.BFLOAT16;
            case I32 -> Nccl.INT32;
        };
    }

    /**
     * An operation's return: ncclSuccess, or ncclInProgress (a non-blocking communicator could not
     * enqueue it yet), waited out within the deadline; anything else fails naming the call.
     */
    private void enqueued(int status, String step) {
        if (status == NcclDeadline.IN_PROGRESS) {
            NcclDeadline.awaitReady(polled, timeoutMillis, who(), step);
        } else if (status != NcclDeadline.SUCCESS) {
            Nccl.check(status, who() + ": " + step);
        }
    }

    private static int ncclType(DType t) {
        return switch (t) {
            case F32 -> Nccl.FLOAT32;
            case BF16 -> Nccl.BFLOAT16;
            case I32 -> Nccl.INT32;
        };
    }

    /** The CUDA tensor behind {@code t}, checked to live on this communicator's device. */
    private CudaTensor onDevice(Tensor t, String op) {
        if (!(t instanceof CudaTensor c)) {
            throw new IllegalArgumentException(who() + ": " + op + " of " + t + ", which is not a CUDA tensor");
        }
        if (c.buffer.isFreed()) {
            throw new IllegalArgumentException(who() + ": " + op + " of " + c.describe() + ", which was freed");
        }
        if (c.buffer.stream.context != stream.context) {
            throw new IllegalArgumentException(who() + ": " + op + " of a tensor on " + c.buffer.stream.context
                    + "; the communicator is on " + stream.context);
        }
        return c;
    }

    /** The device address of element {@code offset} of {@code t}, once {@code [offset, offset + count)} is checked to be in it. */
    private static long address(CudaTensor t, long offset, long count) {
        if (offset < 0 || count < 0 || offset + count > t.numel()) {
            throw new IndexOutOfBoundsException("elements " + offset + " .. " + (offset + count) + " of " + t.describe());
        }
        return t.address() + offset * t.dtype().bytes();
    }

    private static String range(CudaTensor t, long offset, long count) {
        return count + " " + t.dtype() + " at " + offset + " of " + t.describe();
    }

    /** Sums elements {@code [offset, offset + count)} of {@code t} over the ranks, in place. */
    public void allReduceSum(Tensor t, long offset, long count) {
        CudaTensor c = onDevice(t, "all-reduce");
        allReduceSum(c, offset, c, offset, count);
    }

    /**
     * Sums {@code from[fromOffset ..]} over the ranks into {@code into[intoOffset ..]}; the same
     * tensor and offset is the in-place sum. Out of place, a one-rank group copies: what the tests
     * of one GPU check the element type and range with.
     */
    void allReduceSum(CudaTensor from, long fromOffset, CudaTensor into, long intoOffset, long count) {
        requireOpen();
        sameType(from, into);
        long src = address(from, fromOffset, count), dst = address(into, intoOffset, count);
        into.version++;
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclAllReduce(src, dst, count, ncclType(from.dtype()), Nccl.SUM, comm, stream.handle),
                "ncclAllReduce of " + range(from, fromOffset, count));
    }

    /** Copies elements {@code [offset, offset + count)} of rank {@code root}'s {@code t} into every rank's {@code t}. */
    public void broadcast(Tensor t, long offset, long count, int root) {
        broadcast(t, offset, t, offset, count, root);
    }

    /**
     * {@link #broadcast(Tensor, long, long, int)} out of place: rank {@code root}'s {@code from}
     * range into every rank's {@code into} range ({@code from} is read on the root only). A group of
     * them, one per root, is an all-gather into place.
     */
    public void broadcast(Tensor fromTensor, long fromOffset, Tensor intoTensor, long intoOffset, long count, int root) {
        CudaTensor from = onDevice(fromTensor, "broadcast"), into = onDevice(intoTensor, "broadcast");
        requireOpen();
        sameType(from, into);
        long src = address(from, fromOffset, count), dst = address(into, intoOffset, count);
        if (rank != root || from != into) into.version++;
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclBroadcast(src, dst, count, ncclType(from.dtype()), root, comm, stream.handle),
                "ncclBroadcast of " + range(from, fromOffset, count) + " from rank " + root);
    }

    /** Sends elements {@code [offset, offset + count)} of {@code t} to {@code peer} (completes when the peer receives). */
    public void send(Tensor t, long offset, long count, int peer) {
        requireOpen();
        CudaTensor c = onDevice(t, "send");
        long src = address(c, offset, count);
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclSend(src, count, ncclType(c.dtype()), peer, comm, stream.handle),
                "ncclSend of " + range(c, offset, count) + " to rank " + peer);
    }

    /** Receives {@code count} elements from {@code peer} into {@code t} at {@code offset}, in {@code t}'s element type. */
    public void receive(Tensor t, long offset, long count, int peer) {
        requireOpen();
        CudaTensor c = onDevice(t, "receive");
        long dst = address(c, offset, count);
        c.version++;
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclRecv(dst, count, ncclType(c.dtype()), peer, comm, stream.handle),
                "ncclRecv of " + range(c, offset, count) + " from rank " + peer);
    }

    private static void sameType(CudaTensor from, CudaTensor into) {
        if (from.dtype() != into.dtype()) {
            throw new IllegalArgumentException("NCCL moves elements as they are: " + from.describe() + " into "
                    + into.describe());
        }
    }

    /** In-place sum over ranks of {@code count} elements. */
    public void allReduceSum(CudaBuffer buf, long count, ElementType type) {
        requireOpen();
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclAllReduce(buf.address, buf.address, count, ncclType(type), Nccl.SUM, comm,
                stream.handle), "ncclAllReduce of " + count + " " + type);
    }

    public void broadcast(CudaBuffer buf, long count, ElementType type, int root) {
        requireOpen();
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclBroadcast(buf.address, buf.address, count, ncclType(type), root, comm,
                stream.handle), "ncclBroadcast of " + count + " " + type + " from rank " + root);
    }

    public void send(CudaBuffer buf, long count, ElementType type, int peer) {
        requireOpen();
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclSend(buf.address, count, ncclType(type), peer, comm, stream.handle),
                "ncclSend of " + count + " " + type + " to rank " + peer);
    }

    public void receive(CudaBuffer buf, long count, ElementType type, int peer) {
        requireOpen();
        stream.context.makeCurrent();
        enqueued(Nccl.lib().ncclRecv(buf.address, count, ncclType(type), peer, comm, stream.handle),
                "ncclRecv of " + count + " " + type + " from rank " + peer);
    }

    /**
     * Opens a group of this communicator's operations: the sends and receives issued until
     * {@link #groupEnd} are started together, so that two ranks that each send to and receive from
     * the other cannot deadlock on the order.
     */
    public void groupStart() {
        requireOpen();
        Nccl.check(Nccl.lib().ncclGroupStart(), who() + ": ncclGroupStart");
    }

    /**
     * Closes the group opened by {@link #groupStart} and launches its operations; {@code step} says
     * what the group holds (its peers), for the error should it not be launched within the deadline.
     */
    public void groupEnd(String step) {
        stream.context.makeCurrent();
        int status = Nccl.lib().ncclGroupEnd();
        if (released) {
            // an operation of the group failed and aborted the communicator: the group is closed
            // (NCCL's per-thread group state must be), and there is nothing left to wait for
            return;
        }
        enqueued(status, "ncclGroupEnd of " + step);
    }

    /** {@link #await(long, String)} of whatever was queued. */
    public void await(long timeoutMillis) {
        await(timeoutMillis, "the operations queued on the stream");
    }

    /**
     * Waits until the work queued on this communicator's stream so far has finished. Fails, and
     * aborts the communicator (which makes every later operation on it fail too), when NCCL reports
     * an asynchronous error (a peer's connection broke) or the work has not finished within
     * {@code timeoutMillis}; {@code step} names that work and the peers it waits on.
     */
    public void await(long timeoutMillis, String step) {
        requireOpen();
        stream.context.makeCurrent();
        NcclDeadline.awaitStream(polled, timeoutMillis, who(), step);
    }

    private void requireOpen() {
        if (released) {
            throw new IllegalStateException(who() + ": the communicator was closed or aborted");
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
