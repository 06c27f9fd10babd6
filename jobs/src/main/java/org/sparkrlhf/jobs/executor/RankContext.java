package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.jobs.plan.Placement;

/**
 * What one rank of a model function call knows about itself inside its barrier task: its rank in
 * the call's mesh, where it runs (executor, host, GPU address or none on CPU executors), and the
 * rendezvous through which it can open a {@link Communicator} with the call's other ranks.
 */
public final class RankContext implements AutoCloseable {
    private final String call;
    private final int rank;
    private final int worldSize;
    private final String executorId;
    private final String host;
    private final String gpuAddress;
    private final Rendezvous rendezvous;
    private final long recvTimeoutMillis;
    private final Placement placement;
    private Communicator communicator;

    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis) {
        this(call, rank, worldSize, executorId, host, gpuAddress, rendezvous, recvTimeoutMillis, null);
    }

    /** A rank of a call placed by the plan ({@code placement} null: data parallel over its ranks). */
    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis, Placement placement) {
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
        this.recvTimeoutMillis = recvTimeoutMillis;
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

    /** Every rank's string, indexed by rank; all ranks of the call must call it the same number of times. */
    public String[] allGather(String mine) {
        return rendezvous.allGather(mine);
    }

    /**
     * The call's communicator, connected on first use. Collective: every rank of the call must ask
     * for it (the first time), as the connection set-up goes through the rendezvous.
     */
    public Communicator communicator() {
        if (communicator == null) {
            communicator = worldSize == 1 ? new SingleRankCommunicator()
                    : TcpCommunicator.connect(rank, worldSize, host, rendezvous, recvTimeoutMillis);
        }
        return communicator;
    }

    @Override
    public void close() {
        if (communicator != null) {
            communicator.close();
        }
    }
}
