package org.sparkrlhf.jobs.rendezvous;

import java.io.Serializable;

/**
 * Where a run's rendezvous service listens (the driver's host and a port) and the run's random
 * token, which every request must carry; it reaches the tasks inside their closure.
 */
public record RendezvousAddress(String host, int port, String token) implements Serializable {
    @Override
    public String toString() {
        // the token stays out of logs and error messages
        return host + ":" + port;
    }
}
