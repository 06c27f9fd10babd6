package org.sparkrlhf.gpuexec.backend.cpu;

/**
 * The matrix products of {@link CpuBackend#matmul} and {@link CpuBackend#matmulBackward}, shapes
 * already checked: in [N, IC], weight [OC, IC], out and dOut [N, OC]. Bias gradients stay in the
 * backend (they are column sums, not products).
 */
interface Matmul {
    /** out = in @ weight^T + bias (bias [OC] or null). */
    void forward(CpuTensor out, CpuTensor in, CpuTensor weight, float[] bias, int N, int IC, int OC);

    /** outs[i] = in @ weights[i]^T + biases[i] (each [OC[i]] or null), one product after the other unless overridden. */
    default void forward(CpuTensor[] outs, CpuTensor in, CpuTensor[] weights, float[][] biases, int N, int IC, int[] OC) {
        for (int i = 0; i < outs.length; i++) forward(outs[i], in, weights[i], biases[i], N, IC, OC[i]);
    }

    /** dIn += dOut @ weight and dWeight += dOut^T @ in; either may be null. */
    void backward(CpuTensor dIn, CpuTensor dWeight, CpuTensor dOut, CpuTensor in, CpuTensor weight, int N, int IC, int OC);

    /** Releases scratch memory. */
    void close();
}
