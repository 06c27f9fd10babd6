package org.sparkrlhf.jobs.rendezvous;

import org.sparkrlhf.jobs.executor.RunSecret;

import java.io.Serializable;

/**
 * Where a run's rendezvous service listens (the driver's host and a port) and the run's secret,
 * which every rank proves when it connects ({@link org.sparkrlhf.jobs.executor.PeerHandshake}); it
 * reaches the tasks inside their closure.
 */
public record RendezvousAddress(String host, int port, RunSecret secret) implements Serializable {
    @Override
    public String toString() {
        // the secret stays out of logs and error messages
        return host + ":" + port;
    }
}
