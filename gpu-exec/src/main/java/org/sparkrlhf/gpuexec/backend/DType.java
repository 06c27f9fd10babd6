package org.sparkrlhf.gpuexec.backend;

/** Element type of a device tensor. Compute is fp32; BF16 is a storage type (weights, caches). */
public enum DType {
    F32(4),
    BF16(2),
    /** Token ids, positions, masks, slots, counters. */
    I32(4);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element on a device that stores the type natively. */
    public int bytes() {
        return bytes;
    }

    public boolean isFloat() {
        return this != I32;
    }
}
