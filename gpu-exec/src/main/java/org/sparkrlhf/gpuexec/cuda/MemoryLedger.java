package org.sparkrlhf.gpuexec.cuda;

/** Counts the bytes a model holds on the GPU, by kind; every CudaBuffer allocation and free goes through one. */
public final class MemoryLedger {
    private final long[] live = new long[MemoryKind.values().length];
    private long peak;

    synchronized void add(MemoryKind kind, long bytes) {
        live[kind.ordinal()] += bytes;
        long total = 0;
        for (long b : live) total += b;
        peak = Math.max(peak, total);
    }

    synchronized void remove(MemoryKind kind, long bytes) {
        live[kind.ordinal()] -= bytes;
    }

    public synchronized long bytes(MemoryKind kind) {
        return live[kind.ordinal()];
    }

    public synchronized GpuMemoryReport report() {
        return new GpuMemoryReport(live[MemoryKind.WEIGHTS.ordinal()], live[MemoryKind.GRADIENTS.ordinal()],
                live[MemoryKind.OPTIMIZER.ordinal()], live[MemoryKind.ACTIVATIONS.ordinal()],
                live[MemoryKind.KV_CACHE.ordinal()], live[MemoryKind.WORKSPACE.ordinal()], peak);
    }

    public synchronized void resetPeak() {
        long total = 0;
        for (long b : live) total += b;
        peak = total;
    }
}
