// Shared by every kernel source: compiled by NVRTC with no headers, so bf16 is handled by hand.
// T is the element type of activations and compute weights: float, or bf16 with -DACT_BF16.
typedef unsigned short bf16;
#ifdef ACT_BF16
typedef bf16 T;
#else
typedef float T;
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// 16 and 8 bytes moved at once; our own types, so that nothing depends on NVRTC's built-in headers.
struct alignas(16) u32x4 { unsigned x, y, z, w; };
struct alignas(8) f32x2 { float x, y; };

__device__ __forceinline__ float bf16_to_float(bf16 x) { return __uint_as_float(((unsigned)x) << 16); }

// Round to nearest even, NaN kept quiet: the same rounding as the host's Bf16.fromFloat.
__device__ __forceinline__ bf16 float_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

// Elements of float tensors whose storage type is known only at run time: bf != 0 for BF16, else
// F32. The branch is the same for every thread of a launch, so it costs next to nothing.
__device__ __forceinline__ float ldf(const void* p, long long i, int bf) {
    return bf ? bf16_to_float(((const bf16*)p)[i]) : ((const float*)p)[i];
}
__device__ __forceinline__ void stf(void* p, long long i, int bf, float v) {
    if (bf) ((bf16*)p)[i] = float_to_bf16(v); else ((float*)p)[i] = v;
}
__device__ __forceinline__ void addf(void* p, long long i, int bf, float v) { stf(p, i, bf, ldf(p, i, bf) + v); }

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return bf16_to_float(*p); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) { *p = float_to_bf16(v); }
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return bf16_to_float(v); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets the result. scratch holds 32 floats; blockDim.x % 32 == 0.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

__device__ __forceinline__ long long global_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
