package org.sparkrlhf.jobs.testing;

import org.sparkrlhf.jobs.executor.Rendezvous;
import org.sparkrlhf.jobs.executor.RunSecret;

import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;

/**
 * An all-gather among {@code n} threads of one JVM, like {@code BarrierTaskContext.allGather}; its
 * ranks share one run secret, made here.
 */
public final class InMemoryRendezvous {
    private final String[] slots;
    private final CyclicBarrier barrier;
    private final RunSecret secret = RunSecret.generate();

    public InMemoryRendezvous(int n) {
        slots = new String[n];
        barrier = new CyclicBarrier(n);
    }

    public Rendezvous forRank(int rank) {
        return new Rendezvous() {
            @Override
            public String[] allGather(String mine) {
                try {
                    slots[rank] = mine;
                    barrier.await();
                    String[] all = slots.clone();
                    barrier.await();
                    return all;
                } catch (InterruptedException | BrokenBarrierException e) {
                    throw new IllegalStateException(e);
                }
            }

            @Override
            public RunSecret secret() {
                return secret;
            }
        };
    }
}
