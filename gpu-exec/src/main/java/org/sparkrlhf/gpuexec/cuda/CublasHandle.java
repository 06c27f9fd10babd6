package org.sparkrlhf.gpuexec.cuda;

/**
 * A cuBLAS handle bound to one stream, with its own workspace (so that captured GEMMs allocate
 * nothing), and the row-major GEMMs the model needs.
 *
 * <p>Everything is row-major as in llm.c: activations [rows, features], weights [out, in] as HF
 * stores them. cuBLAS is column-major, so each product is written for the transposes.
 */
public final class CublasHandle implements AutoCloseable {
    private static final long WORKSPACE_BYTES = 32L << 20;
    private final CudaStream stream;
    private final long handle;
    private final CudaBuffer workspace;

    public CublasHandle(CudaStream stream, MemoryLedger ledger) {
        this.stream = stream;
        stream.context.makeCurrent();
        long[] h = {0};
        Cublas.check(Cublas.cublasCreate_v2(h), "cublasCreate");
        handle = h[0];
        Cublas.check(Cublas.cublasSetStream_v2(handle, stream.handle), "cublasSetStream");
        workspace = CudaBuffer.allocate(stream, WORKSPACE_BYTES, MemoryKind.WORKSPACE, ledger);
        Cublas.check(Cublas.cublasSetWorkspace_v2(handle, workspace.address, WORKSPACE_BYTES), "cublasSetWorkspace");
        Cublas.check(Cublas.cublasSetMathMode(handle, Cublas.DEFAULT_MATH), "cublasSetMathMode");
    }

    public int version() {
        int[] v = {0};
        Cublas.check(Cublas.cublasGetVersion_v2(handle, v), "cublasGetVersion");
        return v[0];
    }

    private static int cublasType(ElementType t) {
        return switch (t) {
            case F32 -> Cublas.R_32F;
            case BF16 -> Cublas.R_16BF;
            default -> throw new IllegalArgumentException("cuBLAS GEMM on " + t);
        };
    }

    /**
     * out[n, o] = beta * out[n, o] + alpha * sum_i x[n, i] * w[o, i]: a linear layer's forward,
     * x [rows, in] and out [rows, outFeatures] with row strides ldx and ldout (elements).
     */
    public void linearForward(long out, ElementType outType, int ldout, long x, ElementType xType, int ldx,
                              long w, ElementType wType, int rows, int in, int outFeatures, float alpha, float beta) {
        stream.context.makeCurrent();
        Cublas.check(Cublas.cublasGemmEx(handle, Cublas.OP_T, Cublas.OP_N, outFeatures, rows, in,
                Cublas.scalar(alpha), w, cublasType(wType), in, x, cublasType(xType), ldx,
                Cublas.scalar(beta), out, cublasType(outType), ldout, Cublas.COMPUTE_32F, Cublas.GEMM_DEFAULT),
                "cublasGemmEx (linear forward)");
    }

    /** dx[n, i] = beta * dx[n, i] + sum_o dout[n, o] * w[o, i]. */
    public void linearBackwardInput(long dx, ElementType dxType, int lddx, long dout, ElementType doutType, int lddout,
                                    long w, ElementType wType, int rows, int in, int outFeatures, float beta) {
        stream.context.makeCurrent();
        Cublas.check(Cublas.cublasGemmEx(handle, Cublas.OP_N, Cublas.OP_N, in, rows, outFeatures,
                Cublas.scalar(1f), w, cublasType(wType), in, dout, cublasType(doutType), lddout,
                Cublas.scalar(beta), dx, cublasType(dxType), lddx, Cublas.COMPUTE_32F, Cublas.GEMM_DEFAULT),
                "cublasGemmEx (linear backward, input)");
    }

    /** dw[o, i] = beta * dw[o, i] + sum_n dout[n, o] * x[n, i] (beta 1 accumulates micro-batches). */
    public void linearBackwardWeight(long dw, ElementType dwType, long dout, ElementType doutType, int lddout,
                                     long x, ElementType xType, int ldx, int rows, int in, int outFeatures, float beta) {
        stream.context.makeCurrent();
        Cublas.check(Cublas.cublasGemmEx(handle, Cublas.OP_N, Cublas.OP_T, in, outFeatures, rows,
                Cublas.scalar(1f), x, cublasType(xType), ldx, dout, cublasType(doutType), lddout,
                Cublas.scalar(beta), dw, cublasType(dwType), in, Cublas.COMPUTE_32F, Cublas.GEMM_DEFAULT),
                "cublasGemmEx (linear backward, weight)");
    }

    @Override
    public void close() {
        stream.context.makeCurrent();
        Cublas.cublasDestroy_v2(handle);
        workspace.close();
    }
}
