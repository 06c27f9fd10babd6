package org.sparkrlhf.gpuexec.backend.cpu;

/**
 * The matrix products of {@link CpuBackend#matmul} and {@link CpuBackend#matmulBackward}, shapes
 * already checked: in [N, IC], weight [OC, IC], out and dOut [N, OC]. Bias gradients stay in the
 * backend (they are column sums, not products).
 */
interface Matmul {
    /** out = in @ weight^T + bias (bias [OC] or null). */
    void forward(CpuTensor out, CpuTensor in, CpuTensor weight, float[] bias, int N, int IC, int OC);

    /** dIn += dOut @ weight and dWeight += dOut^T @ in; either may be null. */
    void backward(CpuTensor dIn, CpuTensor dWeight, CpuTensor dOut, CpuTensor in, CpuTensor weight, int N, int IC, int OC);

    /** Releases scratch memory. */
    void close();
}
