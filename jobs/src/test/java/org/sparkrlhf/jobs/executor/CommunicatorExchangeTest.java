package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** {@link Communicator#exchange} over the TCP mesh: every rank sends to and receives from every other at once. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CommunicatorExchangeTest {

    /** Rank {@code from}'s message to rank {@code to}: a length and values that name the pair. */
    private static float[] message(int from, int to) {
        float[] m = new float[(1 << 18) + 7 * from + to]; // 1 MiB and more: beyond the socket buffers
        for (int i = 0; i < m.length; i++) {
            m[i] = from * 1000 + to + i * 1e-3f;
        }
        return m;
    }

    @Test
    void allPairsExchangeTheirMessagesInOneStep() throws Exception {
        int n = 3;
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(n);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<Map<Integer, float[]>>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (Communicator c = TcpCommunicator.connect(rank, n, "127.0.0.1", rendezvous.forRank(rank), 20_000)) {
                        Map<Integer, float[]> sends = new LinkedHashMap<>();
                        Map<Integer, float[]> receives = new LinkedHashMap<>();
                        // sends in descending peer order, receives ascending: the order does not matter
                        for (int peer = n - 1; peer >= 0; peer--) {
                            if (peer != rank) {
                                sends.put(peer, message(rank, peer));
                            }
                        }
                        for (int peer = 0; peer < n; peer++) {
                            if (peer != rank) {
                                receives.put(peer, new float[message(peer, rank).length]);
                            }
                        }
                        c.exchange(sends, receives);
                        return receives;
                    }
                }));
            }
            for (int r = 0; r < n; r++) {
                Map<Integer, float[]> got = futures.get(r).get();
                for (int peer = 0; peer < n; peer++) {
                    if (peer != r) {
                        assertArrayEquals(message(peer, r), got.get(peer), "rank " + r + " from " + peer);
                    }
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
