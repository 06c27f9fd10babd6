package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * What encrypting the TCP mesh costs: two ranks of one JVM over loopback exchange a buffer of
 * {@code MiB} each way ({@code sendFloats} then {@code recvFloats}) and all-reduce it, in the clear
 * and encrypted ({@link FrameCipher}); prints MiB/s per rank (median of the rounds) and one thread's
 * seal + open rate of the cipher alone. Checks the all-reduce's sums exactly.
 *
 * <p>Run: {@code java -cp jobs/target/test-classes:jobs/target/classes:<jobs' test classpath>
 * org.sparkrlhf.jobs.executor.TransportThroughputBenchmark [MiB [rounds]]}.
 */
public final class TransportThroughputBenchmark {
    private TransportThroughputBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int mib = args.length > 0 ? Integer.parseInt(args[0]) : 64;
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int floats = mib * (1 << 20) / 4;
        System.out.printf("%d MiB per message, %d rounds (+1 warm-up), %d available processors%n", mib, rounds,
                Runtime.getRuntime().availableProcessors());
        for (boolean encrypted : new boolean[]{false, true}) {
            double[][] rates = run(encrypted, floats, rounds + 1);
            System.out.printf("%-9s exchange %7.1f MiB/s   all-reduce %7.1f MiB/s%n", encrypted ? "encrypted" : "clear",
                    median(rates[0]), median(rates[1]));
        }
        cipherAlone(mib, rounds);
    }

    /** Per round: the exchange's and the all-reduce's MiB/s on rank 0 (round 0, the warm-up, dropped). */
    private static double[][] run(boolean encrypted, int floats, int rounds) throws Exception {
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(2);
        CommSettings settings = new CommSettings(600_000, CommSettings.DEFAULT_MAX_FRAME_BYTES, encrypted);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<double[][]>> ranks = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                ranks.add(pool.submit(() -> {
                    double mib = floats * 4.0 / (1 << 20);
                    double[][] rates = new double[2][rounds - 1];
                    try (TcpCommunicator c = TcpCommunicator.connect(rank, 2, "127.0.0.1", rendezvous.forRank(rank), settings)) {
                        float[] buffer = new float[floats];
                        float[] into = new float[floats];
                        for (int round = 0; round < rounds; round++) {
                            Arrays.fill(buffer, rank + 1f);
                            long t0 = System.nanoTime();
                            c.sendFloats(1 - rank, buffer, 0, floats);
                            c.recvFloats(1 - rank, into, 0, floats);
                            long t1 = System.nanoTime();
                            c.allReduceSum(buffer);
                            long t2 = System.nanoTime();
                            if (buffer[floats - 1] != 3f || into[0] != 2f - rank) {
                                throw new IllegalStateException("wrong sums on rank " + rank);
                            }
                            if (round > 0) {
                                rates[0][round - 1] = mib / ((t1 - t0) / 1e9);
                                rates[1][round - 1] = mib / ((t2 - t1) / 1e9);
                            }
                        }
                    }
                    return rates;
                }));
            }
            ranks.get(1).get();
            return ranks.get(0).get();
        } finally {
            pool.shutdownNow();
        }
    }

    private static void cipherAlone(int mib, int rounds) throws Exception {
        RunSecret secret = RunSecret.generate();
        PeerHandshake.Session session = new PeerHandshake.Session(1, RunSecret.nonce(32), RunSecret.nonce(32), "bench");
        FrameCipher seal = FrameCipher.sending(secret, session, true);
        FrameCipher open = FrameCipher.receiving(secret, session, false);
        byte[] plain = new byte[mib << 20];
        double[] sealRates = new double[rounds];
        double[] openRates = new double[rounds];
        for (int round = 0; round <= rounds; round++) {
            long t0 = System.nanoTime();
            byte[] sealed = seal.seal(plain);
            long t1 = System.nanoTime();
            open.open(sealed);
            long t2 = System.nanoTime();
            if (round > 0) {
                sealRates[round - 1] = mib / ((t1 - t0) / 1e9);
                openRates[round - 1] = mib / ((t2 - t1) / 1e9);
            }
        }
        System.out.printf("AES-GCM on one thread: seal %7.1f MiB/s   open %7.1f MiB/s%n", median(sealRates),
                median(openRates));
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
