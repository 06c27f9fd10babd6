// Softmax over the vocabulary, one block per row of logits [N, V] (F32 or BF16: z_bf).

// Max and log-sum-exp of row z (every thread gets both).
__device__ void row_lse(const void* z, int z_bf, long long off, int V, float* scratch, float* max_out, float* lse_out) {
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, ldf(z, off + j, z_bf));
    mx = block_max(mx, scratch);
    float s = 0.f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(ldf(z, off + j, z_bf) - mx);
    s = block_sum(s, scratch);
    *max_out = mx;
    *lse_out = mx + logf(s);
}

extern "C" __global__ void log_softmax(void* out, int out_bf, const void* z, int z_bf, int N, int V) {
    __shared__ float scratch[32];
    long long off = (long long)blockIdx.x * V;
    float mx, lse;
    row_lse(z, z_bf, off, V, scratch, &mx, &lse);
    for (int j = threadIdx.x; j < V; j += blockDim.x) stf(out, off + j, out_bf, ldf(z, off + j, z_bf) - lse);
}

// lse[n], logprobs[n] = z[n, targets[n]] - lse[n], entropy[n] = -sum p log p (nullable).
extern "C" __global__ void token_logprobs(float* logprobs, float* entropy, float* lse_out, const void* z, int z_bf,
                                          const int* targets, int N, int V) {
    __shared__ float scratch[32];
    long long off = (long long)blockIdx.x * V;
    float mx, lse;
    row_lse(z, z_bf, off, V, scratch, &mx, &lse);
    if (entropy != nullptr) {
        float h = 0.f;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float lp = ldf(z, off + j, z_bf) - lse;
            h -= expf(lp) * lp;
        }
        h = block_sum(h, scratch);
        if (threadIdx.x == 0) entropy[blockIdx.x] = h;
    }
    if (threadIdx.x == 0) {
        int t = targets[blockIdx.x];
        lse_out[blockIdx.x] = lse;
        logprobs[blockIdx.x] = (t >= 0 && t < V) ? ldf(z, off + t, z_bf) - lse : 0.f;
    }
}

// dz += dlp * (onehot(target) - p) - dent * p * (log p + entropy); dlp, dent (and entropy) nullable.
extern "C" __global__ void token_logprobs_backward(void* dz, int dz_bf, const float* dlp, const float* dent,
        const void* z, int z_bf, const float* lse, const float* entropy, const int* targets, int N, int V) {
    int n = blockIdx.x;
    float gl = dlp == nullptr ? 0.f : dlp[n];
    float ge = dent == nullptr ? 0.f : dent[n];
    if (gl == 0.f && ge == 0.f) return;
    long long off = (long long)n * V;
    float L = lse[n], h = entropy == nullptr ? 0.f : entropy[n];
    int t = targets[n];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float lp = ldf(z, off + j, z_bf) - L;
        float p = expf(lp);
        float g = -gl * p;
        if (ge != 0.f) g -= ge * p * (lp + h);
        if (j == t) g += gl;
        addf(dz, off + j, dz_bf, g);
    }
}
