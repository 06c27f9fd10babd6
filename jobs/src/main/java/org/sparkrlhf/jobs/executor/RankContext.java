package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.jobs.plan.Placement;

/**
 * What one rank of a model function call knows about itself inside its barrier task: its rank in
 * the call's mesh, where it runs (executor, host, GPU address or none on CPU executors), the
 * engine its models live on ({@link #backend()}), and the rendezvous through which it can open a
 * {@link Communicator} with the call's other ranks (the driver's, see
 * {@code org.sparkrlhf.jobs.rendezvous.RendezvousServer}).
 */
public final class RankContext implements AutoCloseable {
    private final String call;
    private final int rank;
    private final int worldSize;
    private final String executorId;
    private final String host;
    private final String gpuAddress;
    private final Rendezvous rendezvous;
    private final CommSettings comm;
    private final Placement placement;
    private final EngineOptions engine;
    private final String device;
    private final String meshId;
    private Communicator communicator;

    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis) {
        this(call, rank, worldSize, executorId, host, gpuAddress, rendezvous, recvTimeoutMillis, null);
    }

    /** A rank of a call placed by the plan ({@code placement} null: data parallel over its ranks). */
    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis, Placement placement) {
        this(call, rank, worldSize, executorId, host, gpuAddress, rendezvous, recvTimeoutMillis, placement,
                EngineOptions.DEFAULT);
    }

    /** A rank whose models are built as {@code engine} says (precision, an embedded run's GPU). */
    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis, Placement placement, EngineOptions engine) {
        this(call, rank, worldSize, executorId, host, gpuAddress, rendezvous, recvTimeoutMillis, placement, engine, null);
    }

    /**
     * A rank whose communicator is kept in its executor between calls on the mesh {@code meshId}
     * ({@link MeshConnections}); null: the call connects its own, closed with this context.
     */
    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis, Placement placement, EngineOptions engine,
                       String meshId) {
        this(call, rank, worldSize, executorId, host, gpuAddress, rendezvous, CommSettings.of(recvTimeoutMillis),
                placement, engine, meshId);
    }

    /** A rank whose communicator connects as {@code comm} says (deadline, frame limit, encryption). */
    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, CommSettings comm, Placement placement, EngineOptions engine,
                       String meshId) {
        if (placement != null && placement.size() != worldSize) {
            throw new IllegalArgumentException(call + ": a placement of " + placement.size() + " devices run on "
                    + worldSize + " ranks");
        }
        this.placement = placement;
        this.call = call;
        this.rank = rank;
        this.worldSize = worldSize;
        this.executorId = executorId;
        this.host = host;
        this.gpuAddress = gpuAddress;
        this.rendezvous = rendezvous;
        this.comm = comm;
        this.engine = engine;
        this.device = EngineBackends.deviceOf(gpuAddress, engine);
        this.meshId = meshId;
    }

    public String call() {
        return call;
    }

    public int rank() {
        return rank;
    }

    public int worldSize() {
        return worldSize;
    }

    public String executorId() {
        return executorId;
    }

    public String host() {
        return host;
    }

    /** The GPU this task was given by Spark's resource scheduler, or null on CPU executors. */
    public String gpuAddress() {
        return gpuAddress;
    }

    /**
     * The CUDA device this rank's models run on: its task's GPU, or an embedded run's
     * {@link EngineOptions#localGpu()}; null on CPU executors.
     */
    public String device() {
        return device;
    }

    /**
     * The backend for a new model of this rank: the executor's CUDA backend for this rank's
     * {@link #device()}, shared with every model on that GPU, or a new CPU backend (see
     * {@link EngineBackends}). Asked for only where a model is built, so that a task given a GPU
     * on a machine without a CUDA driver fails there, with the reason, and a call that moves no
     * model (device discovery) still runs.
     */
    public Backend backend() {
        return EngineBackends.forRank(executorId, device, engine);
    }

    /** The id under which this rank's executor keeps the call's communicator, or null when it is not kept. */
    public String meshId() {
        return meshId;
    }

    /** The call's placement, or null when it was run data parallel over a plain list of devices. */
    public Placement placement() {
        return placement;
    }

    /**
     * The layout part of this rank's {@link ModelStore} keys: the placement's key (layout and
     * devices), or {@code dp<n>.tp1.pp1} for calls run without one.
     */
    public String layoutKey() {
        return placement != null ? placement.key() : "dp" + worldSize + ".tp1.pp1";
    }

    /** Data-parallel ranks of the call (all of its ranks when it has no placement). */
    public int dataParallel() {
        return placement != null ? placement.dp() : worldSize;
    }

    /** This rank's data-parallel index. */
    public int dataRank() {
        return placement != null ? placement.dataRankOf(rank) : rank;
    }

    /**
     * This rank's tensor-parallel group (the ranks of its data replica and pipeline stage), as a
     * subgroup of {@link #communicator()}; collective on first use, like it (on GPU ranks over the
     * group's ranks: each group is an NCCL communicator of its own, made once per call).
     */
    public Communicator tensorGroup() {
        Placement p = layoutOrData();
        int stage = p.stageOf(rank);
        int data = p.dataRankOf(rank);
        int[] ranks = new int[p.tp()];
        for (int t = 0; t < ranks.length; t++) {
            ranks[t] = p.rank(stage, data, t);
        }
        return group(ranks);
    }

    /** This rank's pipeline group (stage s of its data replica and tensor rank is group rank s). */
    public Communicator pipelineGroup() {
        Placement p = layoutOrData();
        int data = p.dataRankOf(rank);
        int tensor = p.tensorRankOf(rank);
        int[] ranks = new int[p.pp()];
        for (int s = 0; s < ranks.length; s++) {
            ranks[s] = p.rank(s, data, tensor);
        }
        return group(ranks);
    }

    /** This rank's data-parallel group: the ranks with its stage and tensor rank, one per replica. */
    public Communicator dataGroup() {
        Placement p = layoutOrData();
        int stage = p.stageOf(rank);
        int tensor = p.tensorRankOf(rank);
        int[] ranks = new int[p.dp()];
        for (int d = 0; d < ranks.length; d++) {
            ranks[d] = p.rank(stage, d, tensor);
        }
        return group(ranks);
    }

    private Placement layoutOrData() {
        if (placement != null) {
            return placement;
        }
        return new Placement(call, "", java.util.Collections.nCopies(worldSize,
                new org.sparkrlhf.jobs.runtime.DeviceSlot(0, 0, host, executorId, "", false)), worldSize, 1, 1, 1);
    }

    private Communicator group(int[] ranks) {
        if (ranks.length == 1) {
            return new SingleRankCommunicator();
        }
        if (ranks.length == worldSize) {
            return communicator();
        }
        return communicator().subgroup(ranks);
    }

    /** Every rank's string, indexed by rank; all ranks of the call must call it the same number of times. */
    public String[] allGather(String mine) {
        return rendezvous.allGather(mine);
    }

    /**
     * The call's communicator, connected on first use. Collective: every rank of the call must ask
     * for it (the first time), as the connection set-up goes through the rendezvous. On ranks with
     * a CUDA device and a driver its collectives run over NCCL ({@link NcclTransport}), else
     * everything goes over TCP ({@link TcpCommunicator}). A GPU without a driver (the fake GPUs of
     * a test cluster) carries host data over TCP; any model on it fails in {@link #backend()}.
     * With a {@link #meshId()}, the connections of an earlier call on the same devices are reused
     * when all ranks still hold them (one rendezvous round), and kept for the next call.
     */
    public Communicator communicator() {
        if (communicator == null) {
            if (worldSize == 1) {
                communicator = new SingleRankCommunicator();
            } else if (meshId != null) {
                communicator = MeshConnections.get().connect(meshId, rank, rendezvous, this::connect);
            } else {
                communicator = connect(rendezvous);
            }
        }
        return communicator;
    }

    private Communicator connect(Rendezvous through) {
        if (device != null && CudaBackend.isAvailable()) {
            return NcclTransport.connect(rank, worldSize, host, through, comm,
                    EngineBackends.cuda(device, engine.precision()));
        }
        return TcpCommunicator.connect(rank, worldSize, host, through, comm);
    }

    /**
     * The call failed on this rank: closes its communicator even when its executor keeps it, as its
     * streams may hold half a message that the next call on the mesh must not read (that call then
     * connects anew). Call before {@link #close()}.
     */
    public void discardCommunicator() {
        if (communicator != null && meshId != null && worldSize > 1) {
            MeshConnections.get().discard(meshId, rank, communicator);
        }
    }

    /** Closes the call's communicator unless its executor keeps it for the next call on the mesh. */
    @Override
    public void close() {
        if (communicator != null && (meshId == null || worldSize == 1)) {
            communicator.close();
        }
    }
}
