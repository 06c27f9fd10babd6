package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBuffer;
import org.sparkrlhf.gpuexec.cuda.ElementType;
import org.sparkrlhf.gpuexec.cuda.MemoryKind;
import org.sparkrlhf.gpuexec.cuda.NcclCommunicator;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The transport between the GPU ranks of one call: collectives (tensor-parallel and data-parallel
 * all-reduce, broadcast) and the reallocation's pairwise {@link #exchangeMessages} over NCCL, on the
 * stream of the rank's CUDA backend; byte messages and host float messages over the call's TCP mesh
 * ({@link TcpCommunicator}).
 *
 * <p>Why host float messages stay on TCP: {@link org.sparkrlhf.gpuexec.parallel.Collective#sendFloats}
 * must return without waiting for the peer, and an NCCL send completes only once the peer posts the
 * matching receive. Giving it that contract would need a host-side send queue and a progress thread
 * per peer; the TCP mesh already is that. The model's pipeline moves device tensors instead
 * ({@link #sendTensor} / {@link #recvTensor}, over NCCL through {@link #exchangeTensors}), whose
 * contract allows the wait: stages send along a chain, and the tied-embedding exchange is one
 * grouped exchange.
 *
 * <p>The tensor collectives ({@link #allReduceSum(Backend, List)}: tensor- and data-parallel sums;
 * {@link #broadcast(Backend, Tensor, int)}; {@link #allGather(Backend, Tensor, Tensor)}: the
 * vocabulary-parallel logits; {@link #exchangeTensors}) run NCCL in place on the
 * CUDA backend's tensors, in their dtype (bf16 as ncclBfloat16, fp32 otherwise), at most
 * {@link CommSettings#chunkBytes()} per NCCL operation; no byte goes through the host. Tensors of
 * another backend go the host-staging way of {@link Communicator}. The reallocation's messages
 * ({@link #exchangeMessages}) go through device chunks that the messages fill from, and empty into,
 * the source's and destination's tensors on the device. The engine's host float collectives are
 * staged through device buffers of at most a chunk: upload, the NCCL op, download.
 *
 * <p>Results differ from the CPU transport's in the last bits: NCCL adds the ranks' buffers in its
 * own order (ring or tree), not in rank order. Every rank still ends with the same bits (each element
 * is reduced once and the result copied to all), which is what keeps data-parallel replicas and
 * tensor-parallel shards in sync.
 *
 * <p>The NCCL unique id of the call's communicator is made by rank 0 and sent to the other ranks
 * over the TCP mesh, which only holders of the run's secret can join ({@link PeerHandshake}); a
 * subgroup's (a tensor-, pipeline- or data-parallel group) is made by the subgroup's first rank and
 * sent to its other ranks the same way, so that making a group involves only its ranks. An id is a
 * ticket into the communicator: it is never sent through the driver, logged, or put in a message. Subgroups are made once per rank set and kept:
 * each is an NCCL communicator of its own, made collectively by its ranks. Executors keep the
 * transport, with its subgroups, for the next call on the same devices ({@link MeshConnections}).
 */
public final class NcclTransport implements Communicator {
    private final Communicator messages;
    private final NcclCommunicator nccl;
    private final CudaBackend backend;
    private final long timeoutMillis;
    private final long chunkBytes;
    private final boolean ownsMessages;
    private final Map<String, Communicator> subgroups = new LinkedHashMap<>();

    private NcclTransport(Communicator messages, NcclCommunicator nccl, CudaBackend backend, long timeoutMillis,
                          long chunkBytes, boolean ownsMessages) {
        this.chunkBytes = chunkBytes;
        this.messages = messages;
        this.nccl = nccl;
        this.backend = backend;
        this.timeoutMillis = timeoutMillis;
        this.ownsMessages = ownsMessages;
    }

    /**
     * Connects rank {@code rank} of {@code size}: the TCP mesh (see {@link TcpCommunicator#connect}),
     * then NCCL with rank 0's unique id, sent to the others over that mesh. Collective over the call.
     */
    public static NcclTransport connect(int rank, int size, String bindHost, Rendezvous rendezvous, long timeoutMillis,
                                 CudaBackend backend) {
        return connect(rank, size, bindHost, rendezvous, CommSettings.of(timeoutMillis), backend);
    }

    /** {@link #connect(int, int, String, Rendezvous, long, CudaBackend)} with the TCP mesh as {@code settings} say. */
    public static NcclTransport connect(int rank, int size, String bindHost, Rendezvous rendezvous,
                                        CommSettings settings, CudaBackend backend) {
        long timeoutMillis = settings.timeoutMillis();
        TcpCommunicator tcp = TcpCommunicator.connect(rank, size, bindHost, rendezvous, settings);
        try {
            // the unique id lets whoever holds it join the NCCL communicator: it goes only over the
            // authenticated mesh (never through the driver, never into a log or a message)
            byte[] id;
            if (rank == 0) {
                id = NcclCommunicator.newUniqueId();
                for (int peer = 1; peer < size; peer++) {
                    tcp.send(peer, id);
                }
            } else {
                id = tcp.recv(0);
            }
            NcclCommunicator nccl = new NcclCommunicator(backend.stream(), size, id, rank, timeoutMillis);
            return new NcclTransport(tcp, nccl, backend, timeoutMillis, settings.chunkBytes(), true);
        } catch (RuntimeException e) {
            tcp.close();
            throw e;
        }
    }

    @Override
    public int rank() {
        return messages.rank();
    }

    @Override
    public int size() {
        return messages.size();
    }

    @Override
    public void send(int peer, byte[] message) {
        messages.send(peer, message);
    }

    @Override
    public byte[] recv(int peer) {
        return messages.recv(peer);
    }

    // sendFloats / recvFloats: the defaults, over the TCP messages (see the class comment)

    @Override
    public long chunkBytes() {
        return chunkBytes;
    }

    /** Elements of {@code dtype} in one chunk: one NCCL operation moves at most this many. */
    private long chunkElements(DType dtype) {
        return Math.max(1, chunkBytes / dtype.bytes());
    }

    /** Whether the tensor ops can run in place: the tensors are this rank's CUDA backend's. */
    private boolean onThisGpu(Backend b) {
        return b == backend;
    }

    /** Sums the tensors over the ranks in place on the GPU, in their dtype, chunk by chunk; one wait at the end. */
    @Override
    public void allReduceSum(Backend b, List<Tensor> tensors) {
        if (!onThisGpu(b)) {
            Communicator.super.allReduceSum(b, tensors);
            return;
        }
        long elements = 0;
        for (Tensor t : tensors) {
            long chunk = chunkElements(t.dtype());
            for (long at = 0; at < t.numel(); at += chunk) {
                nccl.allReduceSum(t, at, Math.min(chunk, t.numel() - at));
            }
            elements += t.numel();
        }
        nccl.await(timeoutMillis, "all-reduce of " + tensors.size() + " tensors (" + elements + " elements) over "
                + size() + " ranks");
    }

    @Override
    public void broadcast(Backend b, Tensor t, int root) {
        if (!onThisGpu(b)) {
            Communicator.super.broadcast(b, t, root);
            return;
        }
        checkRoot(root);
        long chunk = chunkElements(t.dtype());
        for (long at = 0; at < t.numel(); at += chunk) {
            nccl.broadcast(t, at, Math.min(chunk, t.numel() - at), root);
        }
        nccl.await(timeoutMillis, "broadcast of " + t.describe() + " from rank " + root);
    }

    /**
     * Every rank's part into its place in {@code gathered}: rank r's part broadcast from r (out of
     * place), chunk k of all ranks' parts in one NCCL group; one wait at the end.
     */
    @Override
    public void allGather(Backend b, Tensor part, Tensor gathered) {
        if (!onThisGpu(b)) {
            Communicator.super.allGather(b, part, gathered);
            return;
        }
        long n = part.numel();
        if (gathered.numel() != n * size()) {
            throw new IllegalArgumentException("all-gather of " + part.describe() + " over " + size() + " ranks into "
                    + gathered.describe());
        }
        String step = "all-gather of " + part.describe() + " over " + size() + " ranks";
        long chunk = chunkElements(part.dtype());
        for (long at = 0; at < n; at += chunk) {
            long count = Math.min(chunk, n - at);
            nccl.groupStart();
            try {
                for (int root = 0; root < size(); root++) {
                    nccl.broadcast(part, at, gathered, root * n + at, count, root);
                }
            } finally {
                nccl.groupEnd(step + ", elements " + at + " of " + n);
            }
        }
        nccl.await(timeoutMillis, step);
    }

    /**
     * The tensors' chunk k to and from every peer in round k, each round one NCCL group (so that
     * pairs that send to each other cannot deadlock whatever order the ranks issue them in); one wait
     * at the end. A pair's tensors must have the same dtype at both ends, which chunks them alike.
     */
    @Override
    public void exchangeTensors(Backend b, Map<Integer, Tensor> sends, Map<Integer, Tensor> receives) {
        if (!onThisGpu(b)) {
            Communicator.super.exchangeTensors(b, sends, receives);
            return;
        }
        long rounds = 0;
        for (Map<Integer, Tensor> side : List.of(sends, receives)) {
            for (Map.Entry<Integer, Tensor> e : side.entrySet()) {
                checkPeer(e.getKey());
                long chunk = chunkElements(e.getValue().dtype());
                rounds = Math.max(rounds, (e.getValue().numel() + chunk - 1) / chunk);
            }
        }
        String step = "exchange of tensors: sends to ranks " + sends.keySet() + ", receives from ranks " + receives.keySet();
        for (long k = 0; k < rounds; k++) {
            nccl.groupStart();
            try {
                for (Map.Entry<Integer, Tensor> e : sends.entrySet()) {
                    Tensor t = e.getValue();
                    long chunk = chunkElements(t.dtype()), at = k * chunk;
                    if (at < t.numel()) {
                        nccl.send(t, at, Math.min(chunk, t.numel() - at), e.getKey());
                    }
                }
                for (Map.Entry<Integer, Tensor> e : receives.entrySet()) {
                    Tensor t = e.getValue();
                    long chunk = chunkElements(t.dtype()), at = k * chunk;
                    if (at < t.numel()) {
                        nccl.receive(t, at, Math.min(chunk, t.numel() - at), e.getKey());
                    }
                }
            } finally {
                nccl.groupEnd(step + ", round " + k + " of " + rounds);
            }
        }
        nccl.await(timeoutMillis, step);
    }

    /** A host array: staged through one device buffer of at most a chunk, chunk by chunk. */
    @Override
    public void allReduceSum(float[] buffer) {
        if (buffer.length == 0) {
            return;
        }
        int chunk = chunkFloats(buffer.length);
        try (CudaBuffer staged = stage(chunk)) {
            for (int at = 0; at < buffer.length; at += chunk) {
                int n = Math.min(chunk, buffer.length - at);
                staged.writeFloats(0, buffer, at, n);
                nccl.allReduceSum(staged, n, ElementType.F32);
                nccl.await(timeoutMillis, "all-reduce of " + n + " floats at " + at + " of " + buffer.length
                        + " over " + size() + " ranks");
                staged.readFloats(0, buffer, at, n);
            }
        }
    }

    @Override
    public void broadcast(float[] buffer, int root) {
        checkRoot(root);
        if (buffer.length == 0) {
            return;
        }
        int chunk = chunkFloats(buffer.length);
        try (CudaBuffer staged = stage(chunk)) {
            for (int at = 0; at < buffer.length; at += chunk) {
                int n = Math.min(chunk, buffer.length - at);
                if (rank() == root) {
                    staged.writeFloats(0, buffer, at, n);
                }
                nccl.broadcast(staged, n, ElementType.F32, root);
                nccl.await(timeoutMillis, "broadcast of " + n + " floats at " + at + " of " + buffer.length
                        + " from rank " + root);
                if (rank() != root) {
                    staged.readFloats(0, buffer, at, n);
                }
            }
        }
    }

    /**
     * The reallocation's messages: round k moves chunk k of every message in one NCCL group (see
     * {@link #exchangeTensors}) through a device chunk per peer, which the message fills and empties
     * itself ({@link FloatMessage#read(long, Backend, Tensor, int)}): a message over this backend's
     * tensors (a resident model, a destination allocated on the device) copies on the device, so no
     * byte of it goes through the host; any other message through a host array of a chunk.
     */
    @Override
    public void exchangeMessages(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        int chunk = (int) Math.max(1, Math.min(chunkBytes / Float.BYTES, Integer.MAX_VALUE - 8));
        long rounds = 0;
        for (Map<Integer, FloatMessage> side : List.of(sends, receives)) {
            for (Map.Entry<Integer, FloatMessage> e : side.entrySet()) {
                checkPeer(e.getKey());
                rounds = Math.max(rounds, (e.getValue().length() + chunk - 1) / chunk);
            }
        }
        if (rounds == 0) {
            return;
        }
        String step = "exchange: sends to ranks " + sends.keySet() + ", receives from ranks " + receives.keySet();
        int staged = (int) Math.min(chunk, longest(sends, receives));
        Map<Integer, Tensor> out = new LinkedHashMap<>();
        Map<Integer, Tensor> in = new LinkedHashMap<>();
        try {
            for (Map.Entry<Integer, FloatMessage> e : sends.entrySet()) {
                out.put(e.getKey(), backend.allocate(MemoryKind.WORKSPACE, DType.F32, staged));
            }
            for (Map.Entry<Integer, FloatMessage> e : receives.entrySet()) {
                in.put(e.getKey(), backend.allocate(MemoryKind.WORKSPACE, DType.F32, staged));
            }
            for (long k = 0; k < rounds; k++) {
                long from = k * chunk;
                for (Map.Entry<Integer, FloatMessage> e : sends.entrySet()) {
                    int n = e.getValue().chunkLength(from, chunk);
                    if (n > 0) {
                        e.getValue().read(from, backend, out.get(e.getKey()), n);
                    }
                }
                String round = step + ", round " + k + " of " + rounds;
                nccl.groupStart();
                try {
                    for (Map.Entry<Integer, FloatMessage> e : sends.entrySet()) {
                        int n = e.getValue().chunkLength(from, chunk);
                        if (n > 0) {
                            nccl.send(out.get(e.getKey()), 0, n, e.getKey());
                        }
                    }
                    for (Map.Entry<Integer, FloatMessage> e : receives.entrySet()) {
                        int n = e.getValue().chunkLength(from, chunk);
                        if (n > 0) {
                            nccl.receive(in.get(e.getKey()), 0, n, e.getKey());
                        }
                    }
                } finally {
                    nccl.groupEnd(round);
                }
                nccl.await(timeoutMillis, round);
                for (Map.Entry<Integer, FloatMessage> e : receives.entrySet()) {
                    int n = e.getValue().chunkLength(from, chunk);
                    if (n > 0) {
                        e.getValue().write(from, backend, in.get(e.getKey()), n);
                    }
                }
            }
        } finally {
            for (Tensor t : out.values()) {
                backend.free(t);
            }
            for (Tensor t : in.values()) {
                backend.free(t);
            }
        }
    }

    private static long longest(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        long n = 0;
        for (FloatMessage m : sends.values()) n = Math.max(n, m.length());
        for (FloatMessage m : receives.values()) n = Math.max(n, m.length());
        return n;
    }

    /** The floats of one staging chunk of a host array of {@code length}. */
    private int chunkFloats(int length) {
        return (int) Math.max(1, Math.min(chunkBytes / Float.BYTES, length));
    }

    private void checkRoot(int root) {
        if (root < 0 || root >= size()) {
            throw new IllegalArgumentException("broadcast from rank " + root + " of " + size());
        }
    }

    /**
     * The subgroup's own NCCL communicator (made on first request, collective over the subgroup's
     * ranks, then kept), with its messages over this one's TCP connections.
     */
    @Override
    public synchronized Communicator subgroup(int... globalRanks) {
        if (globalRanks.length == size()) {
            return this;
        }
        String key = Arrays.toString(globalRanks);
        Communicator group = subgroups.get(key);
        if (group == null) {
            SubgroupCommunicator groupMessages = new SubgroupCommunicator(this, globalRanks);
            if (groupMessages.size() == 1) {
                group = new SingleRankCommunicator();
            } else {
                byte[] id;
                if (groupMessages.rank() == 0) {
                    id = NcclCommunicator.newUniqueId();
                    for (int peer = 1; peer < groupMessages.size(); peer++) {
                        groupMessages.send(peer, id);
                    }
                } else {
                    id = groupMessages.recv(0);
                }
                NcclCommunicator groupNccl = new NcclCommunicator(backend.stream(), groupMessages.size(), id,
                        groupMessages.rank(), timeoutMillis);
                group = new NcclTransport(groupMessages, groupNccl, backend, timeoutMillis, chunkBytes, false);
            }
            subgroups.put(key, group);
        }
        return group;
    }

    private CudaBuffer stage(int floats) {
        return CudaBuffer.allocate(backend.stream(), floats * 4L, MemoryKind.WORKSPACE, backend.ledger());
    }

    private void checkPeer(int peer) {
        if (peer < 0 || peer >= size() || peer == rank()) {
            throw new IllegalArgumentException("rank " + rank() + ": no peer " + peer + " (size " + size() + ")");
        }
    }

    /** Destroys the subgroups' NCCL communicators, then this one's, then the TCP mesh it owns. */
    @Override
    public synchronized void close() {
        RuntimeException first = null;
        for (Communicator group : subgroups.values()) {
            try {
                group.close();
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
        }
        subgroups.clear();
        try {
            nccl.close();
        } catch (RuntimeException e) {
            first = first == null ? e : first;
        }
        if (ownsMessages) {
            messages.close();
        }
        if (first != null) {
            throw first;
        }
    }
}
