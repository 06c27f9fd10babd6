// Flash attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate): causal grouped-query
// attention with a key mask and an optional sliding window, forward and backward, for BF16 q, k, v,
// out and dout with head size HD (a multiple of 16, at most 128, fixed at compile time). The scores
// never reach global memory: the forward keeps each query's log-sum-exp, the backward recomputes
// the probabilities from it (Dao, FlashAttention-2). Layouts as attention.cu.
//
// A block takes 64 rows (queries in the forward, keys in the backward), a warp 16 of them; the other
// side streams through shared memory in tiles of 64, rows padded by 8 values so that ldmatrix
// reads hit 32 different banks.

#ifndef HD
#define HD 64
#endif
#define BR 64
#define PAD (HD + 8)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// The shared-memory address ldmatrix takes, from a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void ldsm_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}

// c += a * b for one 16x8 tile: a 16x16 (row), b 16x8 (col).
__device__ __forceinline__ void mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair, the first in the low half (the lower column).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    return (unsigned)float_to_bf16(lo) | ((unsigned)float_to_bf16(hi) << 16);
}

// Copies rows [r0, r0 + 64) of a [rows, stride] bf16 matrix, columns [col, col + HD), into a padded
// shared tile; rows past n_rows are zeros.
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* src, long long row_base, int r0, int n_rows,
                                          int stride, int col) {
    const int vecs = HD / 8;
    for (int i = threadIdx.x; i < BR * vecs; i += blockDim.x) {
        int r = i / vecs, c = (i % vecs) * 8;
        u32x4 v = {0u, 0u, 0u, 0u};
        if (r0 + r < n_rows) v = *reinterpret_cast<const u32x4*>(src + (row_base + r0 + r) * stride + col + c);
        *reinterpret_cast<u32x4*>(tile + r * PAD + c) = v;
    }
}

// Grid (ceil(T / 64), H, B), 128 threads, dynamic shared memory 3 * 64 * PAD bf16 + 64 ints.
// out is stored as BF16 (out_bf) or F32.
extern "C" __global__ void __launch_bounds__(128) flash_forward(void* out, int out_bf, float* lse, const bf16* q, const bf16* k,
        const bf16* v, const int* mask, int Tn, int H, int Hkv, int window, float scale) {
    extern __shared__ u32x4 smem_vec[];   // 16-byte aligned for the vector copies
    unsigned char* smem = (unsigned char*)smem_vec;
    bf16* Qs = (bf16*)smem;
    bf16* Ks = Qs + BR * PAD;
    bf16* Vs = Ks + BR * PAD;
    int* valid = (int*)(Vs + BR * PAD);
    int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tq = lane & 3;
    int q0 = qt * BR;
    float sl2 = scale * LOG2E;

    load_tile(Qs, q, (long long)b * Tn, q0, Tn, H * HD, h * HD);
    __syncthreads();
    unsigned qf[HD / 16][4];
    {
        int m = lane >> 3, r = lane & 7;
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++)
            ldsm_x4(qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3], Qs + (warp * 16 + r + (m & 1) * 8) * PAD + ks * 16 + (m >> 1) * 8);
    }
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    int qi[2] = {q0 + warp * 16 + gr, q0 + warp * 16 + gr + 8};

    int q_last = min(Tn - 1, q0 + BR - 1);
    int k_first = window > 0 ? max(0, q0 - window + 1) : 0;
    for (int j0 = (k_first / BR) * BR; j0 <= q_last; j0 += BR) {
        __syncthreads();
        load_tile(Ks, k, (long long)b * Tn, j0, Tn, Hkv * HD, g * HD);
        load_tile(Vs, v, (long long)b * Tn, j0, Tn, Hkv * HD, g * HD);
        for (int i = threadIdx.x; i < BR; i += blockDim.x)
            valid[i] = (j0 + i < Tn) && (mask == nullptr || mask[(long long)b * Tn + j0 + i] != 0);
        __syncthreads();

        float s[8][4];
#pragma unroll
        for (int i = 0; i < 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
        {
            int m = lane >> 3, r = lane & 7;
#pragma unroll
            for (int np = 0; np < 4; np++) {
#pragma unroll
                for (int ks = 0; ks < HD / 16; ks++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, Ks + (np * 16 + r + (m >> 1) * 8) * PAD + ks * 16 + (m & 1) * 8);
                    mma16816(s[2 * np], qf[ks], b0, b1);
                    mma16816(s[2 * np + 1], qf[ks], b2, b3);
                }
            }
        }
        // Scale into log2 units and mask; c0, c1 are row gr, c2, c3 row gr + 8.
        float mloc[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int kj = j0 + nt * 8 + 2 * tq + (e & 1), row = e >> 1;
                bool ok = valid[kj - j0] && kj <= qi[row] && (window <= 0 || qi[row] - kj < window);
                float x = ok ? s[nt][e] * sl2 : -INFINITY;
                s[nt][e] = x;
                mloc[row] = fmaxf(mloc[row], x);
            }
        }
        float corr[2], muse[2];
#pragma unroll
        for (int row = 0; row < 2; row++) {
            mloc[row] = fmaxf(mloc[row], __shfl_xor_sync(0xffffffffu, mloc[row], 1));
            mloc[row] = fmaxf(mloc[row], __shfl_xor_sync(0xffffffffu, mloc[row], 2));
            float mn = fmaxf(mrow[row], mloc[row]);
            muse[row] = mn == -INFINITY ? 0.f : mn;
            corr[row] = mrow[row] == -INFINITY ? 0.f : exp2f(mrow[row] - mn);
            mrow[row] = mn;
            lrow[row] *= corr[row];
        }
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[nt][e] - muse[e >> 1]);
                s[nt][e] = p;
                lrow[e >> 1] += p;
            }
        }
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            o[dt][0] *= corr[0]; o[dt][1] *= corr[0];
            o[dt][2] *= corr[1]; o[dt][3] *= corr[1];
        }
        // O += P V, P straight from the score registers (the C layout of two n-tiles is the A layout).
        {
            int m = lane >> 3, r = lane & 7;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                unsigned a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                 pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int dp = 0; dp < HD / 16; dp++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, Vs + (kk * 16 + r + (m & 1) * 8) * PAD + dp * 16 + (m >> 1) * 8);
                    mma16816(o[2 * dp], a, b0, b1);
                    mma16816(o[2 * dp + 1], a, b2, b3);
                }
            }
        }
    }
#pragma unroll
    for (int row = 0; row < 2; row++) {
        lrow[row] += __shfl_xor_sync(0xffffffffu, lrow[row], 1);
        lrow[row] += __shfl_xor_sync(0xffffffffu, lrow[row], 2);
    }
#pragma unroll
    for (int row = 0; row < 2; row++) {
        if (qi[row] >= Tn) continue;
        float inv = lrow[row] > 0.f ? 1.f / lrow[row] : 0.f;
        long long base = ((long long)b * Tn + qi[row]) * H * HD + h * HD;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            float x0 = o[dt][2 * row] * inv, x1 = o[dt][2 * row + 1] * inv;
            if (out_bf) *reinterpret_cast<unsigned*>((bf16*)out + base + dt * 8 + 2 * tq) = pack_bf16(x0, x1);
            else *reinterpret_cast<f32x2*>((float*)out + base + dt * 8 + 2 * tq) = f32x2{x0, x1};
        }
        if (tq == 0 && lse != nullptr)
            lse[((long long)b * H + h) * Tn + qi[row]] = lrow[row] > 0.f ? (mrow[row] + log2f(lrow[row])) * LN2 : -INFINITY;
    }
}

// delta[b, h, i] = dout_i . out_i, one warp per query row (bf bits: 1 dout, 2 out).
extern "C" __global__ void attention_delta(float* delta, const void* dout, const void* out, int bf, int B, int Tn, int H, int D) {
    long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= (long long)B * Tn * H) return;
    // row enumerates (b, i, h) in memory order; delta is laid out [B, H, T]
    int h = (int)(row % H);
    long long bi = row / H;
    int i = (int)(bi % Tn), b = (int)(bi / Tn);
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += ldf(dout, row * D + d, bf & 1) * ldf(out, row * D + d, bf & 2);
    s = warp_sum(s);
    if (lane == 0) delta[((long long)b * H + h) * Tn + i] = s;
}

// Grid (ceil(T / 64), Hkv, B), 128 threads; dynamic shared memory 4 * 64 * PAD + 64 * 72 bf16 and
// 3 * 64 words. Each block owns 64 keys of one kv head and streams every query tile of every head of
// its group: dk, dv are complete at the end (dk, dv += with bf bits 1 dk, 2 dv); dq is added
// atomically into dq_acc (F32 [B, T, H, HD], unscaled) and finished by attention_dq_finish.
#define SPAD (BR + 8)
extern "C" __global__ void __launch_bounds__(128) flash_backward(void* dk, void* dv, int bf, float* dq_acc,
        const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse, const float* delta,
        const int* mask, int Tn, int H, int Hkv, int window, float scale) {
    extern __shared__ u32x4 smem_vec[];   // 16-byte aligned for the vector copies
    unsigned char* smem = (unsigned char*)smem_vec;
    bf16* Ks = (bf16*)smem;
    bf16* Vs = Ks + BR * PAD;
    bf16* Qs = Vs + BR * PAD;
    bf16* dOs = Qs + BR * PAD;
    bf16* dSs = dOs + BR * PAD;              // [64 keys][SPAD queries]
    float* lse_s = (float*)(dSs + BR * SPAD);
    float* delta_s = lse_s + BR;
    int* valid = (int*)(delta_s + BR);
    int kt = blockIdx.x, g = blockIdx.y, b = blockIdx.z, group = H / Hkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tq = lane & 3;
    int m8 = lane >> 3, r8 = lane & 7;
    int j0 = kt * BR;
    float sl2 = scale * LOG2E;

    load_tile(Ks, k, (long long)b * Tn, j0, Tn, Hkv * HD, g * HD);
    load_tile(Vs, v, (long long)b * Tn, j0, Tn, Hkv * HD, g * HD);
    for (int i = threadIdx.x; i < BR; i += blockDim.x)
        valid[i] = (j0 + i < Tn) && (mask == nullptr || mask[(long long)b * Tn + j0 + i] != 0);
    float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) { dka[i][0] = dka[i][1] = dka[i][2] = dka[i][3] = 0.f; dva[i][0] = dva[i][1] = dva[i][2] = dva[i][3] = 0.f; }
    int kj[2] = {j0 + warp * 16 + gr, j0 + warp * 16 + gr + 8};
    int k_last = min(Tn - 1, j0 + BR - 1);
    int q_end = window > 0 ? min(Tn - 1, k_last + window - 1) : Tn - 1;

    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int i0 = (j0 / BR) * BR; i0 <= q_end; i0 += BR) {
            __syncthreads();
            load_tile(Qs, q, (long long)b * Tn, i0, Tn, H * HD, h * HD);
            load_tile(dOs, dout, (long long)b * Tn, i0, Tn, H * HD, h * HD);
            for (int i = threadIdx.x; i < BR; i += blockDim.x) {
                bool in = i0 + i < Tn;
                lse_s[i] = in ? lse[((long long)b * H + h) * Tn + i0 + i] * LOG2E : -INFINITY;
                delta_s[i] = in ? delta[((long long)b * H + h) * Tn + i0 + i] : 0.f;
            }
            __syncthreads();
            // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys and the 64 queries.
            float s[8][4], dp[8][4];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
                dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
            }
#pragma unroll
            for (int ks = 0; ks < HD / 16; ks++) {
                unsigned ka[4], va[4];
                ldsm_x4(ka[0], ka[1], ka[2], ka[3], Ks + (warp * 16 + r8 + (m8 & 1) * 8) * PAD + ks * 16 + (m8 >> 1) * 8);
                ldsm_x4(va[0], va[1], va[2], va[3], Vs + (warp * 16 + r8 + (m8 & 1) * 8) * PAD + ks * 16 + (m8 >> 1) * 8);
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, Qs + (np * 16 + r8 + (m8 >> 1) * 8) * PAD + ks * 16 + (m8 & 1) * 8);
                    mma16816(s[2 * np], ka, b0, b1);
                    mma16816(s[2 * np + 1], ka, b2, b3);
                    ldsm_x4(b0, b1, b2, b3, dOs + (np * 16 + r8 + (m8 >> 1) * 8) * PAD + ks * 16 + (m8 & 1) * 8);
                    mma16816(dp[2 * np], va, b0, b1);
                    mma16816(dp[2 * np + 1], va, b2, b3);
                }
            }
            // P^T and dS^T = P^T (dP^T - delta); rows are keys (kj), columns queries.
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int qcol = nt * 8 + 2 * tq + (e & 1), qi = i0 + qcol, row = e >> 1;
                    bool ok = valid[kj[row] - j0] && kj[row] <= qi && qi < Tn && lse_s[qcol] != -INFINITY
                              && (window <= 0 || qi - kj[row] < window);
                    float p = ok ? exp2f(s[nt][e] * sl2 - lse_s[qcol]) : 0.f;
                    s[nt][e] = p;
                    dp[nt][e] = p * (dp[nt][e] - delta_s[qcol]);
                }
            }
            // dV += P^T dO and dK += dS^T Q (k = the 64 queries); dS^T goes to shared memory for dQ.
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                unsigned pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                  pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                unsigned da[4] = {pack_bf16(dp[2 * kk][0], dp[2 * kk][1]), pack_bf16(dp[2 * kk][2], dp[2 * kk][3]),
                                  pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]), pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
                *reinterpret_cast<unsigned*>(dSs + (warp * 16 + gr) * SPAD + kk * 16 + 2 * tq) = da[0];
                *reinterpret_cast<unsigned*>(dSs + (warp * 16 + gr + 8) * SPAD + kk * 16 + 2 * tq) = da[1];
                *reinterpret_cast<unsigned*>(dSs + (warp * 16 + gr) * SPAD + kk * 16 + 8 + 2 * tq) = da[2];
                *reinterpret_cast<unsigned*>(dSs + (warp * 16 + gr + 8) * SPAD + kk * 16 + 8 + 2 * tq) = da[3];
#pragma unroll
                for (int dp2 = 0; dp2 < HD / 16; dp2++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, dOs + (kk * 16 + r8 + (m8 & 1) * 8) * PAD + dp2 * 16 + (m8 >> 1) * 8);
                    mma16816(dva[2 * dp2], pa, b0, b1);
                    mma16816(dva[2 * dp2 + 1], pa, b2, b3);
                    ldsm_x4_t(b0, b1, b2, b3, Qs + (kk * 16 + r8 + (m8 & 1) * 8) * PAD + dp2 * 16 + (m8 >> 1) * 8);
                    mma16816(dka[2 * dp2], da, b0, b1);
                    mma16816(dka[2 * dp2 + 1], da, b2, b3);
                }
            }
            __syncthreads();
            // dQ (this warp's 16 queries) = dS K over the block's 64 keys, added into dq_acc.
            float dqa[HD / 8][4];
#pragma unroll
            for (int i = 0; i < HD / 8; i++) dqa[i][0] = dqa[i][1] = dqa[i][2] = dqa[i][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                unsigned a[4];
                ldsm_x4_t(a[0], a[1], a[2], a[3], dSs + (kk * 16 + r8 + (m8 >> 1) * 8) * SPAD + warp * 16 + (m8 & 1) * 8);
#pragma unroll
                for (int dp2 = 0; dp2 < HD / 16; dp2++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, Ks + (kk * 16 + r8 + (m8 & 1) * 8) * PAD + dp2 * 16 + (m8 >> 1) * 8);
                    mma16816(dqa[2 * dp2], a, b0, b1);
                    mma16816(dqa[2 * dp2 + 1], a, b2, b3);
                }
            }
#pragma unroll
            for (int row = 0; row < 2; row++) {
                int qi = i0 + warp * 16 + gr + row * 8;
                if (qi >= Tn) continue;
                float* dst = dq_acc + ((long long)b * Tn + qi) * H * HD + h * HD;
#pragma unroll
                for (int dt = 0; dt < HD / 8; dt++) {
                    atomicAdd(dst + dt * 8 + 2 * tq, dqa[dt][2 * row]);
                    atomicAdd(dst + dt * 8 + 2 * tq + 1, dqa[dt][2 * row + 1]);
                }
            }
        }
    }
#pragma unroll
    for (int row = 0; row < 2; row++) {
        if (kj[row] >= Tn) continue;
        long long base = ((long long)b * Tn + kj[row]) * Hkv * HD + g * HD;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int d = dt * 8 + 2 * tq + e;
                if (dk != nullptr) addf(dk, base + d, bf & 1, dka[dt][2 * row + e] * scale);
                if (dv != nullptr) addf(dv, base + d, bf & 2, dva[dt][2 * row + e]);
            }
        }
    }
}

// dq += scale * dq_acc (bf: dq stored as BF16).
extern "C" __global__ void attention_dq_finish(void* dq, int bf, const float* dq_acc, float scale, long long n) {
    long long i = global_index();
    if (i < n) addf(dq, i, bf, dq_acc[i] * scale);
}
