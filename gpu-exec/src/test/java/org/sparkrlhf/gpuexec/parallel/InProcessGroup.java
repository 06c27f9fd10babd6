package org.sparkrlhf.gpuexec.parallel;

import java.util.Arrays;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A group of ranks that are threads of one JVM: one unbounded FIFO queue per ordered pair of ranks
 * for point-to-point messages (a send never waits), and a barrier with a slot per rank for the
 * collectives, which add the slots in rank order on every rank (deterministic, like the executors'
 * communicator). Every wait gives up after a timeout, so a failing rank cannot hang a test.
 */
final class InProcessGroup {
    private static final long TIMEOUT_SECONDS = 60;
    private final int size;
    private final BlockingQueue<float[]>[][] queues;
    private final CyclicBarrier barrier;
    private final float[][] slots;

    @SuppressWarnings("unchecked")
    InProcessGroup(int size) {
        this.size = size;
        this.queues = new BlockingQueue[size][size];
        for (int a = 0; a < size; a++) for (int b = 0; b < size; b++) queues[a][b] = new LinkedBlockingQueue<>();
        this.barrier = new CyclicBarrier(size);
        this.slots = new float[size][];
    }

    Collective member(int rank) {
        return new Member(rank);
    }

    private void await() {
        try {
            barrier.await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted in a collective", e);
        } catch (BrokenBarrierException | TimeoutException e) {
            throw new IllegalStateException("a collective's barrier broke or timed out (another rank failed?)", e);
        }
    }

    private final class Member implements Collective {
        private final int rank;

        Member(int rank) {
            this.rank = rank;
        }

        @Override
        public int rank() {
            return rank;
        }

        @Override
        public int size() {
            return size;
        }

        @Override
        public void sendFloats(int peer, float[] values, int offset, int length) {
            if (peer == rank || peer < 0 || peer >= size) throw new IllegalArgumentException("rank " + rank + ": bad peer " + peer);
            queues[rank][peer].add(Arrays.copyOfRange(values, offset, offset + length));
        }

        @Override
        public void recvFloats(int peer, float[] into, int offset, int length) {
            float[] m;
            try {
                m = queues[peer][rank].poll(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted in a receive", e);
            }
            if (m == null) throw new IllegalStateException("rank " + rank + ": nothing from rank " + peer + " in " + TIMEOUT_SECONDS + " s");
            if (m.length != length) throw new IllegalStateException("rank " + rank + ": expected " + length + " floats from " + peer + ", got " + m.length);
            System.arraycopy(m, 0, into, offset, length);
        }

        @Override
        public void allReduceSum(float[] buffer) {
            slots[rank] = buffer.clone();
            await();
            float[] sum = new float[buffer.length];
            for (int r = 0; r < size; r++) {
                if (slots[r].length != buffer.length) throw new IllegalStateException("all-reduce of different lengths");
                for (int i = 0; i < sum.length; i++) sum[i] += slots[r][i];
            }
            await();
            System.arraycopy(sum, 0, buffer, 0, sum.length);
        }

        @Override
        public void broadcast(float[] buffer, int root) {
            if (rank == root) slots[root] = buffer.clone();
            await();
            if (rank != root) System.arraycopy(slots[root], 0, buffer, 0, buffer.length);
            await();
        }
    }
}
