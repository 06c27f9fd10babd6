package org.sparkrlhf.gpuexec.cuda;

import java.util.Arrays;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

/**
 * A tensor in GPU memory: a CudaBuffer with a shape and a dtype (row-major, contiguous). In
 * {@link Precision#BF16} mode an F32 tensor may carry a bf16 copy (its shadow) for the tensor cores;
 * the version, bumped by every op that writes the tensor, says whether the shadow is current.
 */
public final class CudaTensor implements Tensor {
    private final DType dtype;
    private final int[] shape;
    final CudaBuffer buffer;
    final CudaBackend owner;
    long version;
    CudaTensor shadow;
    long shadowVersion = -1;
    /** The number of the capture that last wrote this tensor (see CudaBackend.capturable). */
    long captureWritten = -1;
    /** The number of the capture that converted the shadow inside its graph. */
    long shadowCapture = -1;

    CudaTensor(CudaBackend owner, DType dtype, int[] shape, CudaBuffer buffer) {
        this.owner = owner;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.buffer = buffer;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int[] shape() {
        return shape;
    }

    /** 1 when the elements are stored as bf16: the flag the kernels take for each float tensor. */
    int bf() {
        return dtype == DType.BF16 ? 1 : 0;
    }

    long bytes() {
        return numel() * dtype.bytes();
    }

    /** The raw device address, for cuBLAS. */
    long address() {
        if (buffer.isFreed()) throw new IllegalArgumentException("tensor " + describe() + " was freed");
        return buffer.address;
    }

    @Override
    public String toString() {
        return "cuda " + dtype + Arrays.toString(shape);
    }
}
