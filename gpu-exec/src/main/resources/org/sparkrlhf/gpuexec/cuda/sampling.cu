// One token per row of logits [B, V], exactly as Backend.sample defines it (and the CPU backend
// computes it): greedy is the first maximum; otherwise z = logits * (1 / temperature), top-k keeps
// z >= the k-th largest z, weights w = exp((double)(z - max z)), top-p keeps each token whose
// preceding mass (tokens in descending w, ties by ascending id) is below top_p of the total, and the
// pick is the first kept id (ascending) whose running sum of w exceeds u * total, u drawn from
// CounterRng(seed, seq_ids[b], steps[b]). One block of 1024 threads per row; thread t owns the
// contiguous ids [t * chunk, (t + 1) * chunk), so that prefix sums follow id order.

#define SAMPLE_THREADS 1024

__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// CounterRng.uniform: a float in [0, 1) with 24 random bits.
__device__ __forceinline__ float counter_uniform(long long seed, int seq_id, int step) {
    unsigned long long x = splitmix64((unsigned long long)seed + 0x9E3779B97F4A7C15ull * (unsigned long long)((long long)seq_id + 1));
    x = splitmix64(x ^ (0xD1B54A32D192ED03ull * (unsigned long long)((long long)step + 1)));
    return (float)(x >> 40) * 5.9604644775390625e-08f;
}

// Floats ordered as unsigned integers.
__device__ __forceinline__ unsigned order_key(float f) {
    unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ double block_sum_d(double v, double* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ int block_sum_i(int v, int* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Exclusive prefix sum over threads in thread order (double); *total gets the block's sum.
__device__ double block_exclusive_scan_d(double v, double* scratch, double* total) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    double inc = v;
    for (int o = 1; o < 32; o <<= 1) { double t = __shfl_up_sync(0xffffffffu, inc, o); if (lane >= o) inc += t; }
    __syncthreads();
    if (lane == 31) scratch[warp] = inc;
    __syncthreads();
    if (warp == 0) {
        double w = lane < warps ? scratch[lane] : 0.0, wi = w;
        for (int o = 1; o < 32; o <<= 1) { double t = __shfl_up_sync(0xffffffffu, wi, o); if (lane >= o) wi += t; }
        if (lane < warps) scratch[lane] = wi - w;   // exclusive prefix of the warps
        if (lane == 31) scratch[32] = wi;
    }
    __syncthreads();
    *total = scratch[32];
    return scratch[warp] + inc - v;
}

__device__ int block_exclusive_scan_i(int v, int* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int inc = v;
    for (int o = 1; o < 32; o <<= 1) { int t = __shfl_up_sync(0xffffffffu, inc, o); if (lane >= o) inc += t; }
    __syncthreads();
    if (lane == 31) scratch[warp] = inc;
    __syncthreads();
    if (warp == 0) {
        int w = lane < warps ? scratch[lane] : 0, wi = w;
        for (int o = 1; o < 32; o <<= 1) { int t = __shfl_up_sync(0xffffffffu, wi, o); if (lane >= o) wi += t; }
        if (lane < warps) scratch[lane] = wi - w;
    }
    __syncthreads();
    return scratch[warp] + inc - v;
}

// eos: up to 8 end-of-sequence ids by value (a captured graph keeps launch arguments, not host arrays).
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_tokens(int* tokens, const void* logits, int z_bf,
        int* finished, const int* seq_ids, const int* steps, int B, int V, long long seed, float temperature,
        int top_k, float top_p, int n_eos, int e0, int e1, int e2, int e3, int e4, int e5, int e6, int e7, int pad_id) {
    __shared__ double dscratch[33];
    __shared__ int iscratch[33];
    __shared__ float fscratch[32];
    __shared__ int picked;
    int b = blockIdx.x;
    if (finished[b] != 0) {
        if (threadIdx.x == 0) tokens[b] = pad_id;
        return;
    }
    long long off = (long long)b * V;
    int chunk = (V + blockDim.x - 1) / blockDim.x;
    int j0 = min(V, (int)threadIdx.x * chunk), j1 = min(V, j0 + chunk);
    if (threadIdx.x == 0) picked = 0x7fffffff;
    int token;
    if (temperature == 0.f) {
        float best = -INFINITY;
        int best_j = 0x7fffffff;
        for (int j = j0; j < j1; j++) {
            float v = ldf(logits, off + j, z_bf);
            if (v > best || best_j == 0x7fffffff) { best = v; best_j = j; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int oj = __shfl_xor_sync(0xffffffffu, best_j, o);
            if (ov > best || (ov == best && oj < best_j)) { best = ov; best_j = oj; }
        }
        __syncthreads();
        if ((threadIdx.x & 31) == 0) { fscratch[threadIdx.x >> 5] = best; iscratch[threadIdx.x >> 5] = best_j; }
        __syncthreads();
        if (threadIdx.x == 0) {
            float bv = fscratch[0];
            int bj = iscratch[0];
            for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
                if (fscratch[w] > bv || (fscratch[w] == bv && iscratch[w] < bj)) { bv = fscratch[w]; bj = iscratch[w]; }
            }
            picked = bj;
        }
        __syncthreads();
        token = picked;
    } else {
        float inv_t = 1.f / temperature;
        float mx = -INFINITY;
        for (int j = j0; j < j1; j++) mx = fmaxf(mx, ldf(logits, off + j, z_bf) * inv_t);
        mx = block_max(mx, fscratch);
        // top-k: the k-th largest z as the largest order key x with count(key >= x) >= k.
        unsigned kth_key = 0;
        if (top_k > 0 && top_k < V) {
            unsigned long long lo = 0, hi = 0xffffffffull;   // count(key >= lo) >= k always holds
            while (lo < hi) {
                unsigned long long mid = lo + (hi - lo + 1) / 2;
                int c = 0;
                for (int j = j0; j < j1; j++) c += order_key(ldf(logits, off + j, z_bf) * inv_t) >= mid;
                c = block_sum_i(c, iscratch);
                if (c >= top_k) lo = mid; else hi = mid - 1;
            }
            kth_key = (unsigned)lo;
        }
        // w and the total over tokens kept by top-k.
        double total = 0.0;
        for (int j = j0; j < j1; j++) {
            float z = ldf(logits, off + j, z_bf) * inv_t;
            if (order_key(z) >= kth_key) total += exp((double)(z - mx));
        }
        total = block_sum_d(total, dscratch);
        // top-p: x* is the smallest w value whose strictly-larger mass f(x*) is below top_p of the total;
        // tokens above x* are kept, tokens at x* in id order while their preceding mass stays below.
        double xstar = -1.0, f_xstar = 0.0;
        if (top_p < 1.f) {
            unsigned long long lo = 0, hi = (unsigned long long)__double_as_longlong(1.0);
            while (lo < hi) {
                unsigned long long mid = lo + (hi - lo) / 2;
                double x = __longlong_as_double((long long)mid), f = 0.0;
                for (int j = j0; j < j1; j++) {
                    float z = ldf(logits, off + j, z_bf) * inv_t;
                    if (order_key(z) < kth_key) continue;
                    double w = exp((double)(z - mx));
                    if (w > x) f += w;
                }
                f = block_sum_d(f, dscratch);
                if (f / total < (double)top_p) hi = mid; else lo = mid + 1;
            }
            xstar = __longlong_as_double((long long)lo);
            double f = 0.0;
            for (int j = j0; j < j1; j++) {
                float z = ldf(logits, off + j, z_bf) * inv_t;
                if (order_key(z) < kth_key) continue;
                double w = exp((double)(z - mx));
                if (w > xstar) f += w;
            }
            f_xstar = block_sum_d(f, dscratch);
        }
        // Tied tokens at x* before this thread's chunk, for the id-order rule within the tie.
        int tied_before = 0;
        if (top_p < 1.f) {
            int mine = 0;
            for (int j = j0; j < j1; j++) {
                float z = ldf(logits, off + j, z_bf) * inv_t;
                if (order_key(z) >= kth_key && exp((double)(z - mx)) == xstar) mine++;
            }
            tied_before = block_exclusive_scan_i(mine, iscratch);
        }
        // Kept weights: this thread's chunk sum, then the running sum in id order.
        double kept_total = 0.0, my_sum = 0.0;
        int my_last = -1;
        {
            int tb = tied_before;
            for (int j = j0; j < j1; j++) {
                float z = ldf(logits, off + j, z_bf) * inv_t;
                if (order_key(z) < kth_key) continue;
                double w = exp((double)(z - mx));
                if (top_p < 1.f) {
                    if (w < xstar) continue;
                    if (w == xstar) { bool keep = (f_xstar + tb * xstar) / total < (double)top_p; tb++; if (!keep) continue; }
                }
                my_sum += w;
                my_last = j;
            }
        }
        double before = block_exclusive_scan_d(my_sum, dscratch, &kept_total);
        float u = counter_uniform(seed, seq_ids[b], steps[b]);
        double threshold = (double)u * kept_total;
        if (before <= threshold && before + my_sum > threshold) {
            double running = before;
            int tb = tied_before;
            for (int j = j0; j < j1; j++) {
                float z = ldf(logits, off + j, z_bf) * inv_t;
                if (order_key(z) < kth_key) continue;
                double w = exp((double)(z - mx));
                if (top_p < 1.f) {
                    if (w < xstar) continue;
                    if (w == xstar) { bool keep = (f_xstar + tb * xstar) / total < (double)top_p; tb++; if (!keep) continue; }
                }
                running += w;
                if (running > threshold) { atomicMin(&picked, j) ; break; }
            }
        }
        // The last kept token when no running sum exceeds the threshold (rounding at the very end).
        int last = my_last;
        for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(0xffffffffu, last, o));
        __syncthreads();
        if ((threadIdx.x & 31) == 0) iscratch[threadIdx.x >> 5] = last;
        __syncthreads();
        if (threadIdx.x == 0) {
            int l = -1;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) l = max(l, iscratch[w]);
            if (picked == 0x7fffffff) picked = l;
        }
        __syncthreads();
        token = picked;
    }
    if (threadIdx.x == 0) {
        tokens[b] = token;
        int eos[8] = {e0, e1, e2, e3, e4, e5, e6, e7};
        for (int e = 0; e < n_eos; e++) if (token == eos[e]) finished[b] = 1;
    }
}
