package org.sparkrlhf.gpuexec.cuda;

/** How the CUDA backend computes matrix products and attention. */
public enum Precision {
    /**
     * Every float tensor is used as stored: F32 products in fp32 (no TF32), BF16 operands widened
     * exactly. The mode that reproduces the CPU backend to about 1e-5.
     */
    FP32,
    /**
     * Mixed precision: GEMM and attention operands are rounded to bf16 and multiplied on tensor cores
     * with fp32 accumulation; results are stored in their tensors' own dtype. F32 weights stay the
     * master copy (AdamW updates them); the backend keeps a bf16 copy of each, refreshed when the
     * weight changes.
     */
    BF16
}
