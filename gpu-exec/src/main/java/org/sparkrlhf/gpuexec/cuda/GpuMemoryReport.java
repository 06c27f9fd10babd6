package org.sparkrlhf.gpuexec.cuda;

/**
 * GPU memory held by one model, in bytes, by kind: live now and the peak since the ledger was made.
 * Weights include fp32 master copies when training; optimizer is AdamW's two moments.
 */
public record GpuMemoryReport(long weights, long gradients, long optimizer, long activations, long kvCache,
                              long workspace, long peakTotal) {
    public long total() {
        return weights + gradients + optimizer + activations + kvCache + workspace;
    }

    @Override
    public String toString() {
        return String.format("weights %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, activations %.1f MiB, "
                + "KV cache %.1f MiB, workspace %.1f MiB; total %.1f MiB, peak %.1f MiB",
                mib(weights), mib(gradients), mib(optimizer), mib(activations), mib(kvCache), mib(workspace),
                mib(total()), mib(peakTotal));
    }

    private static double mib(long b) {
        return b / (1024.0 * 1024.0);
    }
}
