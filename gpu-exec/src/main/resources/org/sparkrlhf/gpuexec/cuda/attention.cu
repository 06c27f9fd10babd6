// Causal grouped-query attention with a key mask and an optional sliding window, one thread per
// query row (per key row in the dk/dv pass): the reference kernels, for any head size up to 256 and
// any mix of F32 and BF16 tensors. The tensor-core kernels (flash.cu) must agree with these.
//
// q, out [B, T, H * D]; k, v [B, T, Hkv * D]; query head h reads kv head h / (H / Hkv). mask [B, T]
// (nullable: all keys) is 0 at keys never attended. lse [B, H, T] keeps each query's natural-log sum
// of exp of its scaled scores, -inf for a query with no key (its output is 0).
// bf: a bit per float tensor stored as BF16: 1 q, 2 k, 4 v, 8 out, 16 dout, 32 dq, 64 dk, 128 dv.

#define MAX_D 256

__device__ __forceinline__ bool attends(int query, int key, const int* mask, int row, int window) {
    return key <= query && (mask == nullptr || mask[row + key] != 0) && (window <= 0 || query - key < window);
}

extern "C" __global__ void attention_forward_simple(void* out, float* lse, const void* q, const void* k, const void* v,
        const int* mask, int bf, int B, int Tn, int H, int Hkv, int D, int window, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (i >= Tn) return;
    int g = h / (H / Hkv);
    float qr[MAX_D], acc[MAX_D];
    long long qo = ((long long)b * Tn + i) * H * D + h * D;
    for (int d = 0; d < D; d++) { qr[d] = ldf(q, qo + d, bf & 1); acc[d] = 0.f; }
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j <= i; j++) {
        if (!attends(i, j, mask, b * Tn, window)) continue;
        long long ko = ((long long)b * Tn + j) * Hkv * D + g * D;
        float s = 0.f;
        for (int d = 0; d < D; d++) s += qr[d] * ldf(k, ko + d, bf & 2);
        s *= scale;
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * corr + p * ldf(v, ko + d, bf & 4);
        m = mn;
    }
    float inv = l > 0.f ? 1.f / l : 0.f;
    for (int d = 0; d < D; d++) stf(out, qo + d, bf & 8, acc[d] * inv);
    if (lse != nullptr) lse[((long long)b * H + h) * Tn + i] = l > 0.f ? m + logf(l) : -INFINITY;
}

// dq[i] += scale * sum_j p_ij (dout_i . v_j - delta_i) k_j, with delta_i = dout_i . out_i.
extern "C" __global__ void attention_backward_dq_simple(void* dq, const void* dout, const void* out, const void* q,
        const void* k, const void* v, const float* lse, const int* mask, int bf, int B, int Tn, int H, int Hkv, int D,
        int window, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (i >= Tn) return;
    int g = h / (H / Hkv);
    float L = lse[((long long)b * H + h) * Tn + i];
    if (L == -INFINITY) return;
    float qr[MAX_D], dor[MAX_D], acc[MAX_D];
    long long qo = ((long long)b * Tn + i) * H * D + h * D;
    float delta = 0.f;
    for (int d = 0; d < D; d++) {
        qr[d] = ldf(q, qo + d, bf & 1);
        dor[d] = ldf(dout, qo + d, bf & 16);
        delta += dor[d] * ldf(out, qo + d, bf & 8);
        acc[d] = 0.f;
    }
    for (int j = 0; j <= i; j++) {
        if (!attends(i, j, mask, b * Tn, window)) continue;
        long long ko = ((long long)b * Tn + j) * Hkv * D + g * D;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < D; d++) { s += qr[d] * ldf(k, ko + d, bf & 2); dp += dor[d] * ldf(v, ko + d, bf & 4); }
        float ds = expf(s * scale - L) * (dp - delta);
        for (int d = 0; d < D; d++) acc[d] += ds * ldf(k, ko + d, bf & 2);
    }
    for (int d = 0; d < D; d++) addf(dq, qo + d, bf & 32, acc[d] * scale);
}

// dk[j] += scale * sum over the group's heads and the queries i that attend j of ds_ij q_i;
// dv[j] += sum p_ij dout_i. Either may be null.
extern "C" __global__ void attention_backward_dkv_simple(void* dk, void* dv, const void* dout, const void* out,
        const void* q, const void* k, const void* v, const float* lse, const int* mask, int bf, int B, int Tn, int H,
        int Hkv, int D, int window, float scale) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, g = blockIdx.y, b = blockIdx.z;
    if (j >= Tn) return;
    if (mask != nullptr && mask[b * Tn + j] == 0) return;
    int group = H / Hkv;
    float kr[MAX_D], vr[MAX_D], dka[MAX_D], dva[MAX_D];
    long long ko = ((long long)b * Tn + j) * Hkv * D + g * D;
    for (int d = 0; d < D; d++) { kr[d] = ldf(k, ko + d, bf & 2); vr[d] = ldf(v, ko + d, bf & 4); dka[d] = 0.f; dva[d] = 0.f; }
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int i = j; i < Tn; i++) {
            if (window > 0 && i - j >= window) break;
            float L = lse[((long long)b * H + h) * Tn + i];
            if (L == -INFINITY) continue;
            long long qo = ((long long)b * Tn + i) * H * D + h * D;
            float s = 0.f, dp = 0.f, delta = 0.f;
            for (int d = 0; d < D; d++) {
                float dov = ldf(dout, qo + d, bf & 16);
                s += ldf(q, qo + d, bf & 1) * kr[d];
                dp += dov * vr[d];
                delta += dov * ldf(out, qo + d, bf & 8);
            }
            float p = expf(s * scale - L);
            float ds = p * (dp - delta);
            for (int d = 0; d < D; d++) {
                dva[d] += p * ldf(dout, qo + d, bf & 16);
                dka[d] += ds * ldf(q, qo + d, bf & 1);
            }
        }
    }
    for (int d = 0; d < D; d++) {
        if (dk != nullptr) addf(dk, ko + d, bf & 64, dka[d] * scale);
        if (dv != nullptr) addf(dv, ko + d, bf & 128, dva[d]);
    }
}

// The decode step for head sizes the vectorized kernel (decode.cu) does not take: one thread per
// (sequence, query head). Caches [B, S, Hkv * D]; bf bits: 1 q, 2 k cache, 4 v cache, 8 out.
extern "C" __global__ void decode_attention_simple(void* out, const void* q, const void* kc, const void* vc,
        const int* mask, const int* slots, int bf, int B, int S, int H, int Hkv, int D, int window, float scale) {
    int h = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (h >= H) return;
    int g = h / (H / Hkv);
    float qr[MAX_D], acc[MAX_D];
    long long qo = (long long)b * H * D + h * D;
    for (int d = 0; d < D; d++) { qr[d] = ldf(q, qo + d, bf & 1); acc[d] = 0.f; }
    int last = slots[b];
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j <= last; j++) {
        if (mask != nullptr && mask[(long long)b * S + j] == 0) continue;
        if (window > 0 && last - j >= window) continue;
        long long ko = ((long long)b * S + j) * Hkv * D + g * D;
        float s = 0.f;
        for (int d = 0; d < D; d++) s += qr[d] * ldf(kc, ko + d, bf & 2);
        s *= scale;
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * corr + p * ldf(vc, ko + d, bf & 4);
        m = mn;
    }
    float inv = l > 0.f ? 1.f / l : 0.f;
    for (int d = 0; d < D; d++) stf(out, qo + d, bf & 8, acc[d] * inv);
}
