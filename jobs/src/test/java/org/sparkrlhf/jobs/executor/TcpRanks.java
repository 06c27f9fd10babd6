package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** Runs the ranks of one call as threads of this JVM, connected by the TCP mesh as {@code settings} say. */
final class TcpRanks {
    private TcpRanks() {
    }

    interface Body<R> {
        R run(Communicator c) throws Exception;
    }

    /** Every rank's result, indexed by rank. */
    static <R> List<R> run(int n, CommSettings settings, Body<R> body) {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(n);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<R>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (Communicator c = TcpCommunicator.connect(rank, n, "127.0.0.1", rendezvous.forRank(rank), settings)) {
                        return body.run(c);
                    }
                }));
            }
            List<R> results = new ArrayList<>();
            for (Future<R> f : futures) {
                results.add(f.get(60, TimeUnit.SECONDS));
            }
            return results;
        } catch (Exception e) {
            throw new AssertionError(e);
        } finally {
            pool.shutdownNow();
        }
    }
}
