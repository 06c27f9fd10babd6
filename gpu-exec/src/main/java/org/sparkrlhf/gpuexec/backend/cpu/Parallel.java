package org.sparkrlhf.gpuexec.backend.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Parallel loops over index ranges on one ForkJoinPool (no thread is created per op). Small loops
 * run on the calling thread, and a loop is cut into chunks of at least {@link #SPLIT_WORK}
 * operations: a chunk handed to a parked worker costs its wake-up and the caller's wait, tens of
 * microseconds of CPU. With chunks from 32k operations (eight chunks per loop on two threads) the
 * 8.94M model's forward + backward cost 0.33 CPU-s on two threads against 0.26 on one, its norms'
 * and SwiGLU's backward 2-3x their one-thread CPU time; from 256k, 0.29 CPU-s, and a quarter
 * fewer wall seconds too (CpuEngineBenchmark, 2 threads: 2,500 -> 3,200 tokens/s).
 */
final class Parallel {
    /** A chunk's fewest operations: a loop of less than twice this runs on the calling thread. */
    static final long SPLIT_WORK = 1L << 18;

    /** The body of a loop over [lo, hi). */
    interface RangeBody {
        void run(int lo, int hi);
    }

    /** The body of block {@code part} (of at most {@link #threads()}) of a loop, over [lo, hi). */
    interface PartBody {
        void run(int part, int lo, int hi);
    }

    private final ForkJoinPool pool;
    private final int threads;
    private final long splitWork;

    Parallel(ForkJoinPool pool, long splitWork) {
        if (splitWork < 1) throw new IllegalArgumentException("splitWork must be >= 1, got " + splitWork);
        this.pool = pool;
        this.threads = pool.getParallelism();
        this.splitWork = splitWork;
    }

    int threads() {
        return threads;
    }

    /** Runs body over [0, n) in chunks; {@code workPerItem} estimates the operations per index. */
    void range(int n, long workPerItem, RangeBody body) {
        if (n <= 0) return;
        long work = (long) n * Math.max(1, workPerItem);
        if (threads == 1 || n == 1 || work < 2 * splitWork) {
            body.run(0, n);
            return;
        }
        int chunks = (int) Math.min(n, Math.min((long) threads * 4, work / splitWork));
        Chunk task = new Chunk((part, lo, hi) -> body.run(lo, hi), n, chunks, 0, chunks);
        if (java.util.concurrent.ForkJoinTask.getPool() == pool) task.invoke();
        else pool.invoke(task);
    }

    /**
     * Runs body over [0, n) cut into one contiguous block per thread, telling each block its index
     * (for kernels such as a library's matrix product, whose blocks should be few and large, and for
     * per-block scratch).
     */
    void parts(int n, PartBody body) {
        if (n <= 0) return;
        int parts = Math.min(threads, n);
        if (parts == 1) {
            body.run(0, 0, n);
            return;
        }
        Chunk task = new Chunk(body, n, parts, 0, parts);
        if (java.util.concurrent.ForkJoinTask.getPool() == pool) task.invoke();
        else pool.invoke(task);
    }

    private static final class Chunk extends RecursiveAction {
        private final PartBody body;
        private final int n, chunks, c0, c1;

        Chunk(PartBody body, int n, int chunks, int c0, int c1) {
            this.body = body;
            this.n = n;
            this.chunks = chunks;
            this.c0 = c0;
            this.c1 = c1;
        }

        @Override
        protected void compute() {
            if (c1 - c0 == 1) {
                int lo = (int) ((long) n * c0 / chunks), hi = (int) ((long) n * c1 / chunks);
                if (lo < hi) body.run(c0, lo, hi);
                return;
            }
            int mid = (c0 + c1) >>> 1;
            invokeAll(new Chunk(body, n, chunks, c0, mid), new Chunk(body, n, chunks, mid, c1));
        }
    }
}
