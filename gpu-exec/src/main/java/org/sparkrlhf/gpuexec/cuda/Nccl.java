package org.sparkrlhf.gpuexec.cuda;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.PointerByReference;

/** NCCL through JNA, by versioned name (libnccl.so.2). */
final class Nccl {
    static final int INT32 = 2, FLOAT32 = 7, BFLOAT16 = 9;
    static final int SUM = 0, MAX = 2, AVG = 4;

    /** ncclUniqueId: 128 opaque bytes, passed by value to ncclCommInitRank. */
    @Structure.FieldOrder("internal")
    public static class UniqueId extends Structure {
        public byte[] internal = new byte[128];

        public static class ByValue extends UniqueId implements Structure.ByValue {}
    }

    interface Lib extends Library {
        int ncclGetVersion(int[] version);

        int ncclGetUniqueId(UniqueId id);

        int ncclCommInitRank(PointerByReference comm, int nranks, UniqueId.ByValue id, int rank);

        /** Since NCCL 2.14; {@code config} points at an ncclConfig_t ({@link NcclCommunicator}'s). */
        int ncclCommInitRankConfig(PointerByReference comm, int nranks, UniqueId.ByValue id, int rank, Pointer config);

        int ncclCommDestroy(Pointer comm);

        int ncclCommAbort(Pointer comm);

        int ncclCommGetAsyncError(Pointer comm, int[] asyncError);

        int ncclAllReduce(long send, long recv, long count, int type, int op, Pointer comm, long stream);

        int ncclBroadcast(long send, long recv, long count, int type, int root, Pointer comm, long stream);

        int ncclAllGather(long send, long recv, long sendCount, int type, Pointer comm, long stream);

        int ncclReduceScatter(long send, long recv, long recvCount, int type, int op, Pointer comm, long stream);

        int ncclSend(long buf, long count, int type, int peer, Pointer comm, long stream);

        int ncclRecv(long buf, long count, int type, int peer, Pointer comm, long stream);

        int ncclGroupStart();

        int ncclGroupEnd();

        String ncclGetErrorString(int result);
    }

    /**
     * libcuda's cuStreamQuery, by JNA: JCuda throws on CUDA_ERROR_NOT_READY when its exceptions are
     * enabled (they are), and a wait that polls must see "not ready" as an answer, not an error.
     */
    interface Driver extends Library {
        int cuStreamQuery(long stream);
    }

    private static volatile Lib lib;
    private static volatile Driver driver;

    private Nccl() {}

    static Lib lib() {
        Lib l = lib;
        if (l == null) {
            synchronized (Nccl.class) {
                if (lib == null) {
                    lib = Native.load(NativeLibraries.firstLoadable("NCCL", "libnccl.so.2", "libnccl.so"), Lib.class);
                }
                l = lib;
            }
        }
        return l;
    }

    static Driver driver() {
        Driver d = driver;
        if (d == null) {
            synchronized (Nccl.class) {
                if (driver == null) {
                    driver = Native.load(NativeLibraries.firstLoadable("the CUDA driver", "libcuda.so.1", "libcuda.so"),
                            Driver.class);
                }
                d = driver;
            }
        }
        return d;
    }

    static void check(int status, String call) {
        if (status != 0) throw new IllegalStateException(call + " failed: " + lib().ncclGetErrorString(status));
    }
}
