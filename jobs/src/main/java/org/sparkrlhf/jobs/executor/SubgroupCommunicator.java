package org.sparkrlhf.jobs.executor;

import java.util.Arrays;

/** A view of a parent communicator restricted to some of its ranks, renumbered 0..k-1. */
final class SubgroupCommunicator implements Communicator {
    private final Communicator parent;
    private final int[] globalRanks;
    private final int rank;

    SubgroupCommunicator(Communicator parent, int[] globalRanks) {
        this.parent = parent;
        this.globalRanks = globalRanks.clone();
        int mine = -1;
        for (int i = 0; i < globalRanks.length; i++) {
            if (globalRanks[i] < 0 || globalRanks[i] >= parent.size()) {
                throw new IllegalArgumentException("subgroup rank " + globalRanks[i] + " outside 0.." + (parent.size() - 1));
            }
            if (globalRanks[i] == parent.rank()) {
                mine = i;
            }
        }
        if (mine < 0) {
            throw new IllegalArgumentException("rank " + parent.rank() + " is not in subgroup " + Arrays.toString(globalRanks));
        }
        this.rank = mine;
    }

    @Override
    public long chunkBytes() {
        return parent.chunkBytes();
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return globalRanks.length;
    }

    @Override
    public void send(int peer, byte[] message) {
        parent.send(globalRanks[peer], message);
    }

    @Override
    public byte[] recv(int peer) {
        return parent.recv(globalRanks[peer]);
    }

    /** The parent owns the connections. */
    @Override
    public void close() {
    }
}
