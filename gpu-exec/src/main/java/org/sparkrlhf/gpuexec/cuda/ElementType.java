package org.sparkrlhf.gpuexec.cuda;

/** How the GPU stores one element of a buffer. */
public enum ElementType {
    F32(4), BF16(2), I32(4);

    public final int bytes;

    ElementType(int bytes) {
        this.bytes = bytes;
    }
}
