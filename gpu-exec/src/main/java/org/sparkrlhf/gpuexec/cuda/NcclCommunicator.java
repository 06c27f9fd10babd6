package org.sparkrlhf.gpuexec.cuda;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;

/**
 * One rank's NCCL communicator on one stream. The unique id is made by rank 0 and handed to the
 * others out of band (on Spark, through BarrierTaskContext.allGather) as 128 bytes.
 */
public final class NcclCommunicator implements AutoCloseable {
    private final CudaStream stream;
    private final Pointer comm;
    public final int ranks;
    public final int rank;

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
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclAllReduce(buf.address, buf.address, count, ncclType(type), Nccl.SUM, comm,
                stream.handle), "ncclAllReduce");
    }

    public void broadcast(CudaBuffer buf, long count, ElementType type, int root) {
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclBroadcast(buf.address, buf.address, count, ncclType(type), root, comm,
                stream.handle), "ncclBroadcast");
    }

    public void send(CudaBuffer buf, long count, ElementType type, int peer) {
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclSend(buf.address, count, ncclType(type), peer, comm, stream.handle), "ncclSend");
    }

    public void receive(CudaBuffer buf, long count, ElementType type, int peer) {
        stream.context.makeCurrent();
        Nccl.check(Nccl.lib().ncclRecv(buf.address, count, ncclType(type), peer, comm, stream.handle), "ncclRecv");
    }

    @Override
    public void close() {
        stream.context.makeCurrent();
        Nccl.lib().ncclCommDestroy(comm);
    }
}
