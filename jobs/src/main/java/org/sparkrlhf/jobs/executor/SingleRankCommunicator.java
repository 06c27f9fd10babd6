package org.sparkrlhf.jobs.executor;

/** The communicator of a one-rank call: collectives are the identity and there is nobody to message. */
final class SingleRankCommunicator implements Communicator {
    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public void send(int peer, byte[] message) {
        throw new IllegalArgumentException("a one-rank call has no peer " + peer);
    }

    @Override
    public byte[] recv(int peer) {
        throw new IllegalArgumentException("a one-rank call has no peer " + peer);
    }

    @Override
    public void close() {
    }
}
