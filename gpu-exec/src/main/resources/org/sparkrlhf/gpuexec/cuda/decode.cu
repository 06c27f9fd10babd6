// Attention of one new query per sequence over its KV cache (the decode step).
// kc, vc [B, S, Hkv * HD] of T (the cache's storage type, fixed at compile time with HD);
// q, out [B, H * HD] (q_bf, out_bf: their storage). Sequence b attends to slots j <= slots[b] with
// mask[b, j] != 0 and, when window > 0, slots[b] - j < window.
//
// One block per (sequence, kv head, group of up to GB query heads), four warps splitting the keys.
// A key is read by LPK lanes, each loading 16 bytes (VEC values); a warp takes KPW keys at a time.
// Each lane keeps an online softmax (max, sum, VEC output values) per query head; lanes and then
// warps merge theirs at the end.

#ifndef HD
#define HD 64
#endif
#define VEC (16 / (int)sizeof(T))
#define LPK (HD / VEC)
#define KPW (32 / LPK)
#define GB 4
#define WARPS 4

__device__ __forceinline__ void load16(float* dst, const T* src) {
    u32x4 u = *reinterpret_cast<const u32x4*>(src);
#ifdef ACT_BF16
    unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int e = 0; e < 4; e++) { dst[2 * e] = __uint_as_float(w[e] << 16); dst[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u); }
#else
    dst[0] = __uint_as_float(u.x); dst[1] = __uint_as_float(u.y); dst[2] = __uint_as_float(u.z); dst[3] = __uint_as_float(u.w);
#endif
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) decode_attention(void* out, int out_bf, const void* q, int q_bf,
        const T* kc, const T* vc, const int* mask, const int* slots, int B, int S, int H, int Hkv, int window, float scale) {
    __shared__ float sm_m[WARPS][GB], sm_l[WARPS][GB], sm_acc[WARPS][GB][HD];
    int b = blockIdx.x, g = blockIdx.y, group = H / Hkv;
    int h0 = g * group + blockIdx.z * GB;
    int nh = min(GB, (g + 1) * group - h0);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int sub = lane % LPK, slot_in_step = lane / LPK;
    int last = slots[b];
    int first = window > 0 ? max(0, last - window + 1) : 0;

    float qv[GB][VEC], m[GB], l[GB], acc[GB][VEC];
#pragma unroll
    for (int hh = 0; hh < GB; hh++) {
        m[hh] = -INFINITY; l[hh] = 0.f;
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            acc[hh][e] = 0.f;
            qv[hh][e] = hh < nh ? ldf(q, (long long)b * H * HD + (h0 + hh) * HD + sub * VEC + e, q_bf) : 0.f;
        }
    }
    for (int j0 = first + warp * KPW; j0 <= last; j0 += WARPS * KPW) {
        int j = j0 + slot_in_step;
        bool ok = j <= last && (mask == nullptr || mask[(long long)b * S + j] != 0);
        float kv[VEC], vv[VEC];
        if (ok) {
            long long off = ((long long)b * S + j) * Hkv * HD + g * HD + sub * VEC;
            load16(kv, kc + off);
            load16(vv, vc + off);
        } else {
#pragma unroll
            for (int e = 0; e < VEC; e++) { kv[e] = 0.f; vv[e] = 0.f; }
        }
#pragma unroll
        for (int hh = 0; hh < GB; hh++) {
            float s = 0.f;
#pragma unroll
            for (int e = 0; e < VEC; e++) s += qv[hh][e] * kv[e];
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (ok) {
                s *= scale;
                float mn = fmaxf(m[hh], s);
                float corr = expf(m[hh] - mn), p = expf(s - mn);
                l[hh] = l[hh] * corr + p;
#pragma unroll
                for (int e = 0; e < VEC; e++) acc[hh][e] = acc[hh][e] * corr + p * vv[e];
                m[hh] = mn;
            }
        }
    }
    // Merge the key slots of the warp (lanes with the same sub), then the warps.
#pragma unroll
    for (int hh = 0; hh < GB; hh++) {
#pragma unroll
        for (int o = LPK; o < 32; o <<= 1) {
            float mo = __shfl_xor_sync(0xffffffffu, m[hh], o);
            float lo = __shfl_xor_sync(0xffffffffu, l[hh], o);
            float mn = fmaxf(m[hh], mo);
            float c1 = m[hh] == -INFINITY ? 0.f : expf(m[hh] - mn);
            float c2 = mo == -INFINITY ? 0.f : expf(mo - mn);
            l[hh] = l[hh] * c1 + lo * c2;
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                float ao = __shfl_xor_sync(0xffffffffu, acc[hh][e], o);
                acc[hh][e] = acc[hh][e] * c1 + ao * c2;
            }
            m[hh] = mn;
        }
        if (slot_in_step == 0) {
            if (sub == 0) { sm_m[warp][hh] = m[hh]; sm_l[warp][hh] = l[hh]; }
#pragma unroll
            for (int e = 0; e < VEC; e++) sm_acc[warp][hh][sub * VEC + e] = acc[hh][e];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < nh * HD; idx += blockDim.x) {
        int hh = idx / HD, d = idx % HD;
        float M = -INFINITY;
        for (int w = 0; w < WARPS; w++) M = fmaxf(M, sm_m[w][hh]);
        float L = 0.f, A = 0.f;
        if (M != -INFINITY) {
            for (int w = 0; w < WARPS; w++) {
                if (sm_m[w][hh] == -INFINITY) continue;
                float c = expf(sm_m[w][hh] - M);
                L += sm_l[w][hh] * c;
                A += sm_acc[w][hh][d] * c;
            }
        }
        stf(out, (long long)b * H * HD + (h0 + hh) * HD + d, out_bf, L > 0.f ? A / L : 0.f);
    }
}
