// Host emulation of the CUDA features the kernels use, for KernelEmulationTest: one block at a time,
// each CUDA thread a coroutine (ucontext) on one OS thread, switched at __syncthreads and at warp-wide
// exchanges (shuffles, ldmatrix, mma.sync with the fragment layouts of the PTX ISA). Coroutines, not
// OS threads: a barrier is then a switch rather than a futex wake-up of up to a thousand threads
// (about 5x less CPU), and the order is fixed (each thread runs alone up to its next barrier, in
// thread order), so every run computes the same.
#pragma once
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <ucontext.h>
#include <vector>
#include <functional>
#include <algorithm>
#include <cstdio>
#include <memory>

struct emu_dim { unsigned x = 1, y = 1, z = 1; };
// Set by the scheduler each time it resumes a thread (all CUDA threads of a block share one OS thread).
inline emu_dim threadIdx, blockIdx;
inline emu_dim blockDim, gridDim;

// One CUDA thread: a coroutine with its own stack, resumed by its block's scheduler.
struct EmuFiber {
    ucontext_t ctx;
    void* stack = nullptr;
    unsigned index = 0;
    bool done = false;
};
inline ucontext_t emu_scheduler;
inline EmuFiber* emu_current;

// Gives the OS thread back to the scheduler, which resumes the block's next thread.
inline void emu_yield() { swapcontext(&emu_current->ctx, &emu_scheduler); }

// A barrier of the block's coroutines: the last to arrive opens it; the others wait their turn.
struct EmuBarrier {
    explicit EmuBarrier(int n) : expected(n) {}
    int expected, arrived = 0;
    long phase = 0;
    void arrive_and_wait() {
        long p = phase;
        if (++arrived == expected) { arrived = 0; phase++; return; }
        while (phase == p) emu_yield();
    }
    void arrive_and_drop() {
        expected--;
        if (arrived > 0 && arrived == expected) { arrived = 0; phase++; }
    }
};

struct EmuWarp {
    EmuBarrier bar{32};
    uint64_t slot[32][16];
    const void* addr[32];
};
struct EmuBlock {
    std::unique_ptr<EmuBarrier> bar;
    std::vector<std::unique_ptr<EmuWarp>> warps;
    std::vector<unsigned char> smem;
};
inline EmuBlock* emu_block;
inline void* emu_dynamic_smem() { return emu_block->smem.data(); }
inline void __syncthreads() { emu_block->bar->arrive_and_wait(); }
inline EmuWarp& emu_warp() { return *emu_block->warps[threadIdx.x / 32]; }
inline unsigned emu_lane() { return threadIdx.x % 32; }

template <class V> V emu_exchange(V v, unsigned src_lane) {
    static_assert(sizeof(V) <= 8);
    EmuWarp& w = emu_warp();
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(V));
    w.slot[emu_lane()][0] = bits;
    w.bar.arrive_and_wait();
    uint64_t got = w.slot[src_lane][0];
    w.bar.arrive_and_wait();
    V out;
    std::memcpy(&out, &got, sizeof(V));
    return out;
}
template <class V> V __shfl_xor_sync(unsigned, V v, int o) { return emu_exchange(v, emu_lane() ^ o); }
template <class V> V __shfl_up_sync(unsigned, V v, int d) {
    unsigned l = emu_lane();
    V got = emu_exchange(v, l >= (unsigned)d ? l - d : l);
    return got;
}

// Atomic as they are: a coroutine is only switched at a barrier.
inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline int atomicMin(int* p, int v) { int o = *p; *p = std::min(o, v); return o; }

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline long long __double_as_longlong(double d) { long long u; std::memcpy(&u, &d, 8); return u; }
inline double __longlong_as_double(long long u) { double d; std::memcpy(&d, &u, 8); return d; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// ldmatrix .x4 (trans: each 8x8 matrix transposed): lane l gives the address of row l % 8 of matrix l / 8.
inline void emu_ldsm(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, const unsigned short* p, bool trans) {
    EmuWarp& w = emu_warp();
    unsigned l = emu_lane();
    w.addr[l] = p;
    w.bar.arrive_and_wait();
    unsigned r[4];
    for (int m = 0; m < 4; m++) {
        unsigned short e[2];
        for (int k = 0; k < 2; k++) {
            int row, col;
            if (!trans) { row = l / 4; col = 2 * (l % 4) + k; }
            else { row = 2 * (l % 4) + k; col = l / 4; }
            e[k] = ((const unsigned short*)w.addr[8 * m + row])[col];
        }
        r[m] = (unsigned)e[0] | ((unsigned)e[1] << 16);
    }
    w.bar.arrive_and_wait();
    r0 = r[0]; r1 = r[1]; r2 = r[2]; r3 = r[3];
}

inline float emu_bf(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }

// mma.sync.m16n8k16.row.col f32 += bf16 * bf16, with the fragment layouts of the PTX ISA.
inline void emu_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    EmuWarp& w = emu_warp();
    unsigned l = emu_lane();
    for (int i = 0; i < 4; i++) w.slot[l][i] = a[i];
    w.slot[l][4] = b0; w.slot[l][5] = b1;
    w.bar.arrive_and_wait();
    float A[16][16], B[16][8];
    for (int t = 0; t < 32; t++) {
        int g = t / 4, q = t % 4;
        for (int k = 0; k < 2; k++) {
            auto half = [&](int reg) { return emu_bf((unsigned short)((w.slot[t][reg] >> (16 * k)) & 0xffff)); };
            A[g][2 * q + k] = half(0);
            A[g + 8][2 * q + k] = half(1);
            A[g][2 * q + 8 + k] = half(2);
            A[g + 8][2 * q + 8 + k] = half(3);
            B[2 * q + k][g] = half(4);
            B[2 * q + 8 + k][g] = half(5);
        }
    }
    w.bar.arrive_and_wait();
    int g = l / 4, q = l % 4;
    for (int e = 0; e < 4; e++) {
        int row = g + (e >> 1) * 8, col = 2 * q + (e & 1);
        float s = 0.f;
        for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
        c[e] += s;
    }
}

inline const std::function<void()>* emu_kernel;

inline void emu_fiber_main() {
    EmuFiber* f = emu_current;
    (*emu_kernel)();
    emu_block->warps[f->index / 32]->bar.arrive_and_drop();
    emu_block->bar->arrive_and_drop();
    f->done = true;
    emu_yield();
}

inline void emu_launch(emu_dim grid, int threads, size_t smem, const std::function<void()>& kernel) {
    constexpr size_t STACK = 256 * 1024;
    gridDim = grid;
    blockDim = emu_dim{(unsigned)threads, 1, 1};
    emu_kernel = &kernel;
    std::vector<EmuFiber> fibers(threads);
    for (auto& f : fibers) f.stack = std::malloc(STACK);   // untouched pages cost nothing
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                EmuBlock blk;
                blk.bar = std::make_unique<EmuBarrier>(threads);
                for (int w = 0; w < (threads + 31) / 32; w++) blk.warps.push_back(std::make_unique<EmuWarp>());
                if (threads % 32) blk.warps.back()->bar.expected = threads % 32;
                blk.smem.assign(smem + 16, 0xAB);
                emu_block = &blk;
                blockIdx = emu_dim{bx, by, bz};
                for (int t = 0; t < threads; t++) {
                    EmuFiber& f = fibers[t];
                    f.index = t;
                    f.done = false;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = STACK;
                    f.ctx.uc_link = nullptr;
                    makecontext(&f.ctx, emu_fiber_main, 0);
                }
                for (int live = threads; live > 0;) {
                    live = 0;
                    for (auto& f : fibers) {
                        if (f.done) continue;
                        emu_current = &f;
                        threadIdx = emu_dim{f.index, 0, 0};
                        swapcontext(&emu_scheduler, &f.ctx);
                        if (!f.done) live++;
                    }
                }
            }
    for (auto& f : fibers) std::free(f.stack);
}
