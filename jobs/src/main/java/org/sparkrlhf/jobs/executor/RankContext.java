package org.sparkrlhf.jobs.executor;

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
    private Communicator communicator;

    public RankContext(String call, int rank, int worldSize, String executorId, String host, String gpuAddress,
                       Rendezvous rendezvous, long recvTimeoutMillis) {
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
