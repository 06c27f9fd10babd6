package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBuffer;
import org.sparkrlhf.gpuexec.cuda.ElementType;
import org.sparkrlhf.gpuexec.cuda.MemoryKind;
import org.sparkrlhf.gpuexec.cuda.NcclCommunicator;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The transport between the GPU ranks of one call: collectives (tensor-parallel and data-parallel
 * all-reduce, broadcast) and the reallocation's pairwise {@link #exchange} over NCCL, on the
 * stream of the rank's CUDA backend; byte messages and the pipeline's point-to-point floats over
 * the call's TCP mesh ({@link TcpCommunicator}).
 *
 * <p>Why pipeline messages stay on TCP: {@link org.sparkrlhf.gpuexec.parallel.Collective#sendFloats}
 * must return without waiting for the peer (the pipeline schedule and the tied-embedding exchange
 * send before they receive, in both directions), and an NCCL send completes only once the peer
 * posts the matching receive. Giving it that contract would need a host-side send queue and a
 * progress thread per peer; the TCP mesh already is that.
 *
 * <p>The engine's collectives take host {@code float[]}s, so each NCCL operation is staged through
 * a device buffer: upload, the NCCL op, download. Correct first, not fast: the data was usually on
 * the GPU already (gradients are downloaded by {@link GradientSync} to be packed) and makes two
 * extra trips over PCIe; an all-reduce on the backend's tensors in place is the fast path to come.
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
    private final boolean ownsMessages;
    private final Map<String, Communicator> subgroups = new LinkedHashMap<>();

    private NcclTransport(Communicator messages, NcclCommunicator nccl, CudaBackend backend, long timeoutMillis,
                          boolean ownsMessages) {
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
            return new NcclTransport(tcp, nccl, backend, timeoutMillis, true);
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
    public void allReduceSum(float[] buffer) {
        if (buffer.length == 0) {
            return;
        }
        try (CudaBuffer staged = stage(buffer.length)) {
            staged.writeFloats(buffer);
            nccl.allReduceSum(staged, buffer.length, ElementType.F32);
            nccl.await(timeoutMillis, "all-reduce of " + buffer.length + " floats over " + size() + " ranks");
            System.arraycopy(staged.readFloats(buffer.length), 0, buffer, 0, buffer.length);
        }
    }

    @Override
    public void broadcast(float[] buffer, int root) {
        if (root < 0 || root >= size()) {
            throw new IllegalArgumentException("broadcast from rank " + root + " of " + size());
        }
        if (buffer.length == 0) {
            return;
        }
        try (CudaBuffer staged = stage(buffer.length)) {
            if (rank() == root) {
                staged.writeFloats(buffer);
            }
            nccl.broadcast(staged, buffer.length, ElementType.F32, root);
            nccl.await(timeoutMillis, "broadcast of " + buffer.length + " floats from rank " + root);
            if (rank() != root) {
                System.arraycopy(staged.readFloats(buffer.length), 0, buffer, 0, buffer.length);
            }
        }
    }

    /**
     * All of this rank's sends and receives inside one NCCL group, so that pairs that send to each
     * other cannot deadlock whatever order the ranks issue them in.
     */
    @Override
    public void exchange(Map<Integer, float[]> sends, Map<Integer, float[]> receives) {
        List<CudaBuffer> buffers = new ArrayList<>();
        try {
            Map<Integer, CudaBuffer> out = new LinkedHashMap<>();
            for (Map.Entry<Integer, float[]> e : sends.entrySet()) {
                checkPeer(e.getKey());
                if (e.getValue().length > 0) {
                    CudaBuffer b = stage(e.getValue().length);
                    buffers.add(b);
                    b.writeFloats(e.getValue());
                    out.put(e.getKey(), b);
                }
            }
            Map<Integer, CudaBuffer> in = new LinkedHashMap<>();
            for (Map.Entry<Integer, float[]> e : receives.entrySet()) {
                checkPeer(e.getKey());
                if (e.getValue().length > 0) {
                    CudaBuffer b = stage(e.getValue().length);
                    buffers.add(b);
                    in.put(e.getKey(), b);
                }
            }
            String step = "exchange: sends to ranks " + out.keySet() + ", receives from ranks " + in.keySet();
            nccl.groupStart();
            try {
                for (Map.Entry<Integer, CudaBuffer> e : out.entrySet()) {
                    nccl.send(e.getValue(), sends.get(e.getKey()).length, ElementType.F32, e.getKey());
                }
                for (Map.Entry<Integer, CudaBuffer> e : in.entrySet()) {
                    nccl.receive(e.getValue(), receives.get(e.getKey()).length, ElementType.F32, e.getKey());
                }
            } finally {
                nccl.groupEnd(step);
            }
            nccl.await(timeoutMillis, step);
            for (Map.Entry<Integer, CudaBuffer> e : in.entrySet()) {
                float[] into = receives.get(e.getKey());
                System.arraycopy(e.getValue().readFloats(into.length), 0, into, 0, into.length);
            }
        } finally {
            for (CudaBuffer b : buffers) {
                b.close();
            }
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
                group = new NcclTransport(groupMessages, groupNccl, backend, timeoutMillis, false);
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
