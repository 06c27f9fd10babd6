package org.sparkrlhf.gpuexec.backend.cpu;

/** The pure-Java products: {@link Gemm} on rows, with transposed copies where a product needs columns. */
final class ReferenceMatmul implements Matmul {
    private final Parallel par;
    /** Transposed operands of a weight-gradient product, kept between calls (ops run one at a time). */
    private final float[][] scratch = new float[2][];

    ReferenceMatmul(Parallel par) {
        this.par = par;
    }

    private float[] scratch(int slot, int size) {
        if (scratch[slot] == null || scratch[slot].length < size) scratch[slot] = new float[size];
        return scratch[slot];
    }

    @Override
    public void forward(CpuTensor out, CpuTensor in, CpuTensor weight, float[] bias, int N, int IC, int OC) {
        Gemm.run(out.write(), in.read(), weight.read(), bias, N, IC, OC, false, par);
    }

    @Override
    public void backward(CpuTensor dIn, CpuTensor dWeight, CpuTensor dOut, CpuTensor in, CpuTensor weight, int N, int IC, int OC) {
        float[] ga = dOut.read();
        if (dIn != null) {
            // dIn[n, i] = sum_o dOut[n, o] W[o, i]: rows of dOut against rows of W^T
            Gemm.run(dIn.write(), ga, weight.transposed(par), null, N, OC, IC, true, par);
        }
        if (dWeight != null) {
            // dW[o, i] = sum_n dOut[n, o] in[n, i]: rows of dOut^T against rows of in^T
            float[] gt = scratch(0, N * OC), xt = scratch(1, N * IC);
            Transpose.run(ga, N, OC, gt, par);
            Transpose.run(in.read(), N, IC, xt, par);
            Gemm.run(dWeight.write(), gt, xt, null, OC, N, IC, true, par);
        }
    }

    @Override
    public void close() {
        scratch[0] = scratch[1] = null;
    }
}
