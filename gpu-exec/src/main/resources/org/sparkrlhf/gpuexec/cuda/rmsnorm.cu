// RMSNorm as LLaMA: out = weight * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps), in float. One warp per row.

extern "C" __global__ void rmsnorm_forward(void* out, int out_bf, float* rstd, const void* inp, int in_bf,
                                           const void* weight, int w_bf, int N, int C, float eps) {
    int warps = blockDim.x >> 5;
    int row = blockIdx.x * warps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    long long off = (long long)row * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) { float v = ldf(inp, off + c, in_bf); ss += v * v; }
    ss = warp_sum(ss);
    float r = 1.f / sqrtf(ss / C + eps);
    for (int c = lane; c < C; c += 32) stf(out, off + c, out_bf, ldf(weight, c, w_bf) * (ldf(inp, off + c, in_bf) * r));
    if (rstd != nullptr && lane == 0) rstd[row] = r;
}

// With g = weight * dout: dx += rstd * g - x * rstd^3 * mean(g * x); dweight += sum over rows of dout * x * rstd.
// dinp or dweight may be null. dweight is F32; each block adds its partial sums (shared memory, C
// floats) once, after taking rows_per_block rows.
extern "C" __global__ void rmsnorm_backward(void* dinp, int din_bf, float* dweight, const void* dout, int dout_bf,
                                            const void* inp, int in_bf, const void* weight, int w_bf,
                                            const float* rstd, int N, int C, int rows_per_block) {
    extern __shared__ float dw_partial[];
    int warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (dweight != nullptr) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) dw_partial[c] = 0.f;
        __syncthreads();
    }
    int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
    for (int row = r0 + warp; row < r1; row += warps) {
        long long off = (long long)row * C;
        float r = rstd[row];
        if (dinp != nullptr) {
            float dot = 0.f;
            for (int c = lane; c < C; c += 32) dot += ldf(dout, off + c, dout_bf) * ldf(weight, c, w_bf) * ldf(inp, off + c, in_bf);
            dot = warp_sum(dot);
            float k = dot * r * r * r / C;
            for (int c = lane; c < C; c += 32) {
                float v = ldf(dout, off + c, dout_bf) * ldf(weight, c, w_bf) * r - ldf(inp, off + c, in_bf) * k;
                addf(dinp, off + c, din_bf, v);
            }
        }
        if (dweight != nullptr) {
            for (int c = lane; c < C; c += 32) atomicAdd(&dw_partial[c], ldf(dout, off + c, dout_bf) * ldf(inp, off + c, in_bf) * r);
        }
    }
    if (dweight != nullptr) {
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(&dweight[c], dw_partial[c]);
    }
}
