// The CUDA kernels run on the CPU by the emulator (emu.h), each against a reference: the simple
// kernels against direct loops in double, the tensor-core flash attention and the vectorized decode
// attention against the simple kernels, sampling against the CPU backend's Sampler ported line by line.
// Built and run by KernelEmulationTest; prints one line per check and "N failures".
#include "emu.h"
#include "kernels.h"  // written by KernelEmulationTest from the kernel sources
#include <random>
#include <cassert>
#include <map>
typedef unsigned short bf16t;
static bf16t f2b(float f) { unsigned u = __float_as_uint(f); u += 0x7fff + ((u >> 16) & 1); return (bf16t)(u >> 16); }
static float b2f(bf16t b) { return __uint_as_float(((unsigned)b) << 16); }
static std::mt19937_64 rng(42);
static std::vector<float> randn(size_t n, float s) { std::normal_distribution<float> d(0, s); std::vector<float> v(n); for (auto& x : v) x = d(rng); return v; }
static std::vector<bf16t> tob(const std::vector<float>& v) { std::vector<bf16t> o(v.size()); for (size_t i = 0; i < v.size(); i++) o[i] = f2b(v[i]); return o; }
static double rel(const std::vector<float>& ref, const std::vector<float>& x) {
    double m = 0, s = 1; for (size_t i = 0; i < ref.size(); i++) { if (std::isfinite(ref[i])) s = std::max(s, (double)std::fabs(ref[i])); }
    for (size_t i = 0; i < ref.size(); i++) { if (!std::isfinite(ref[i]) && !std::isfinite(x[i])) continue; double d = std::fabs(ref[i] - x[i]); if (!(d == d)) return 1e9; m = std::max(m, d); }
    return m / s;
}
static int failures = 0;
static void check(const char* what, double d, double tol) { printf("%-48s %.3g %s\n", what, d, d <= tol ? "ok" : "FAIL"); if (!(d <= tol)) failures++; }

template <class FWD, class BWD, class DELTA, class FIN>
void attention_case(int B, int T, int H, int KV, int D, int window, FWD flash_fwd, BWD flash_bwd, DELTA delta_k, FIN finish) {
    printf("-- attention B=%d T=%d H=%d KV=%d D=%d window=%d\n", B, T, H, KV, D, window);
    auto q = tob(randn((size_t)B * T * H * D, 1)), k = tob(randn((size_t)B * T * KV * D, 1)), v = tob(randn((size_t)B * T * KV * D, 1));
    std::vector<int> mask(B * T, 1);
    for (int t = std::min(30, T - 3); t < T; t++) mask[T + t] = 0;
    if (B > 2) for (int t = 0; t < 5; t++) mask[2 * T + t] = 0;
    float scale = 1.f / std::sqrt((float)D);
    std::vector<float> out1(B * T * H * D), lse1(B * H * T), out2(B * T * H * D), lse2(B * H * T);
    emu_launch({(unsigned)(T + 63) / 64, (unsigned)H, (unsigned)B}, 64, 0, [&] {
        att::attention_forward_simple(out1.data(), lse1.data(), q.data(), k.data(), v.data(), mask.data(), 1 | 2 | 4, B, T, H, KV, D, window, scale); });
    size_t sm = 3 * 64 * (D + 8) * 2 + 64 * 4;
    emu_launch({(unsigned)(T + 63) / 64, (unsigned)H, (unsigned)B}, 128, sm, [&] {
        flash_fwd(out2.data(), 0, lse2.data(), q.data(), k.data(), v.data(), mask.data(), T, H, KV, window, scale); });
    {   // the simple kernels against a direct reference in double
        std::vector<float> ro(out1.size()), rl(lse1.size()), rdq(B * T * H * D, 0), rdk(B * T * KV * D, 0), rdv(B * T * KV * D, 0);
        auto ok = [&](int b, int i, int j) { return j <= i && mask[b * T + j] && (window <= 0 || i - j < window); };
        for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < T; i++) {
            int g = h / (H / KV);
            std::vector<double> p(T, 0); double mx = -1e300; bool any = false;
            for (int j = 0; j < T; j++) if (ok(b, i, j)) { double s = 0; for (int d = 0; d < D; d++) s += b2f(q[((size_t)(b * T + i) * H + h) * D + d]) * b2f(k[((size_t)(b * T + j) * KV + g) * D + d]); p[j] = s * scale; mx = std::max(mx, p[j]); any = true; }
            double sum = 0; for (int j = 0; j < T; j++) if (ok(b, i, j)) { p[j] = std::exp(p[j] - mx); sum += p[j]; }
            size_t ob = ((size_t)(b * T + i) * H + h) * D;
            rl[((size_t)b * H + h) * T + i] = any ? (float)(mx + std::log(sum)) : -INFINITY;
            for (int d = 0; d < D; d++) { double o = 0; for (int j = 0; j < T; j++) if (ok(b, i, j)) o += p[j] / sum * b2f(v[((size_t)(b * T + j) * KV + g) * D + d]); ro[ob + d] = any ? (float)o : 0.f; }
        }
        check("simple forward out vs reference", rel(ro, out1), 1e-5);
        check("simple forward lse vs reference", rel(rl, lse1), 1e-5);
    }
    check("flash forward out vs simple", rel(out1, out2), 2e-2);
    check("flash forward lse vs simple", rel(lse1, lse2), 1e-2);
    // backward
    auto dout = tob(randn((size_t)B * T * H * D, 1));
    std::vector<float> dq1(B * T * H * D, 0), dk1(B * T * KV * D, 0), dv1(B * T * KV * D, 0);
    emu_launch({(unsigned)(T + 63) / 64, (unsigned)H, (unsigned)B}, 64, 0, [&] {
        att::attention_backward_dq_simple(dq1.data(), dout.data(), out1.data(), q.data(), k.data(), v.data(), lse1.data(), mask.data(), 1 | 2 | 4 | 16, B, T, H, KV, D, window, scale); });
    emu_launch({(unsigned)(T + 63) / 64, (unsigned)KV, (unsigned)B}, 64, 0, [&] {
        att::attention_backward_dkv_simple(dk1.data(), dv1.data(), dout.data(), out1.data(), q.data(), k.data(), v.data(), lse1.data(), mask.data(), 1 | 2 | 4 | 16, B, T, H, KV, D, window, scale); });
    std::vector<float> delta(B * H * T), dqacc(B * T * H * D, 0), dq2(B * T * H * D, 0), dk2(B * T * KV * D, 0), dv2(B * T * KV * D, 0);
    int rows = B * T * H;
    emu_launch({(unsigned)(rows + 3) / 4, 1, 1}, 128, 0, [&] { delta_k(delta.data(), dout.data(), out2.data(), 1, B, T, H, D); });
    size_t smb = 4 * 64 * (D + 8) * 2 + 64 * 72 * 2 + 3 * 64 * 4;
    emu_launch({(unsigned)(T + 63) / 64, (unsigned)KV, (unsigned)B}, 128, smb, [&] {
        flash_bwd(dk2.data(), dv2.data(), 0, dqacc.data(), dout.data(), q.data(), k.data(), v.data(), lse2.data(), delta.data(), mask.data(), T, H, KV, window, scale); });
    long long n = dq2.size();
    emu_launch({(unsigned)((n + 255) / 256), 1, 1}, 256, 0, [&] { finish(dq2.data(), 0, dqacc.data(), scale, n); });
    {   // simple backward against a direct reference in double (p from the reference forward)
        std::vector<float> rdq(B * T * H * D, 0), rdk(B * T * KV * D, 0), rdv(B * T * KV * D, 0);
        auto ok = [&](int b, int i, int j) { return j <= i && mask[b * T + j] && (window <= 0 || i - j < window); };
        auto Q = [&](int b, int i, int h, int d) { return (double)b2f(q[((size_t)(b * T + i) * H + h) * D + d]); };
        auto K = [&](int b, int j, int g, int d) { return (double)b2f(k[((size_t)(b * T + j) * KV + g) * D + d]); };
        auto Vv = [&](int b, int j, int g, int d) { return (double)b2f(v[((size_t)(b * T + j) * KV + g) * D + d]); };
        auto dO = [&](int b, int i, int h, int d) { return (double)b2f(dout[((size_t)(b * T + i) * H + h) * D + d]); };
        for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < T; i++) {
            int g = h / (H / KV);
            std::vector<double> p(T, 0); double mx = -1e300; bool any = false;
            for (int j = 0; j < T; j++) if (ok(b, i, j)) { double sc = 0; for (int d = 0; d < D; d++) sc += Q(b, i, h, d) * K(b, j, g, d); p[j] = sc * scale; mx = std::max(mx, p[j]); any = true; }
            if (!any) continue;
            double sum = 0; for (int j = 0; j < T; j++) if (ok(b, i, j)) { p[j] = std::exp(p[j] - mx); sum += p[j]; }
            for (int j = 0; j < T; j++) p[j] /= sum;
            std::vector<double> o(D, 0); for (int j = 0; j < T; j++) if (ok(b, i, j)) for (int d = 0; d < D; d++) o[d] += p[j] * Vv(b, j, g, d);
            double delta = 0; for (int d = 0; d < D; d++) delta += dO(b, i, h, d) * o[d];
            for (int j = 0; j < T; j++) if (ok(b, i, j)) {
                double dp = 0; for (int d = 0; d < D; d++) dp += dO(b, i, h, d) * Vv(b, j, g, d);
                double ds = p[j] * (dp - delta);
                for (int d = 0; d < D; d++) {
                    rdq[((size_t)(b * T + i) * H + h) * D + d] += ds * K(b, j, g, d) * scale;
                    rdk[((size_t)(b * T + j) * KV + g) * D + d] += ds * Q(b, i, h, d) * scale;
                    rdv[((size_t)(b * T + j) * KV + g) * D + d] += p[j] * dO(b, i, h, d);
                }
            }
        }
        check("simple backward dq vs reference", rel(rdq, dq1), 1e-5);
        check("simple backward dk vs reference", rel(rdk, dk1), 1e-5);
        check("simple backward dv vs reference", rel(rdv, dv1), 1e-5);
    }
    check("flash backward dq vs simple", rel(dq1, dq2), 3e-2);
    check("flash backward dk vs simple", rel(dk1, dk2), 3e-2);
    check("flash backward dv vs simple", rel(dv1, dv2), 3e-2);
}

template <class KT, class DEC>
void decode_case(bool bfCache, int B, int S, int H, int KV, int D, int window, DEC dec) {
    printf("-- decode bf16cache=%d B=%d S=%d H=%d KV=%d D=%d window=%d\n", bfCache, B, S, H, KV, D, window);
    auto kcf = randn((size_t)B * S * KV * D, 1), vcf = randn((size_t)B * S * KV * D, 1);
    auto kcb = tob(kcf), vcb = tob(vcf);
    auto q = randn((size_t)B * H * D, 1);
    std::vector<int> mask(B * S, 1), slots(B);
    for (int b = 0; b < B; b++) { slots[b] = S - 1 - 7 * b; for (int j = 0; j < 3 * b; j++) mask[b * S + j] = 0; }
    std::vector<float> o1(B * H * D), o2(B * H * D);
    float scale = 1.f / std::sqrt((float)D);
    const void* kc = bfCache ? (const void*)kcb.data() : (const void*)kcf.data();
    const void* vc = bfCache ? (const void*)vcb.data() : (const void*)vcf.data();
    int bfl = bfCache ? (2 | 4) : 0;
    emu_launch({(unsigned)(H + 31) / 32, (unsigned)B, 1}, 32, 0, [&] {
        att::decode_attention_simple(o1.data(), q.data(), kc, vc, mask.data(), slots.data(), bfl, B, S, H, KV, D, window, scale); });
    int group = H / KV;
    emu_launch({(unsigned)B, (unsigned)KV, (unsigned)(group + 3) / 4}, 128, 0, [&] {
        dec(o2.data(), 0, q.data(), 0, (KT) kc, (KT) vc, mask.data(), slots.data(), B, S, H, KV, window, scale); });
    check("decode vectorized vs simple", rel(o1, o2), 1e-5);
}

// The CPU backend's Sampler, in C++ (same order of operations).
static unsigned long long sm64(unsigned long long z) { z += 0x9E3779B97F4A7C15ull; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; return z ^ (z >> 31); }
static float uni(long long seed, int id, int step) { unsigned long long x = sm64((unsigned long long)seed + 0x9E3779B97F4A7C15ull * (unsigned long long)((long long)id + 1)); x = sm64(x ^ (0xD1B54A32D192ED03ull * (unsigned long long)((long long)step + 1))); return (float)(x >> 40) * 0x1.0p-24f; }
static int cpu_pick(const float* logits, int V, float temp, int topK, float topP, long long seed, int id, int step) {
    if (temp == 0) { int best = 0; float bv = logits[0]; for (int j = 1; j < V; j++) if (logits[j] > bv) { bv = logits[j]; best = j; } return best; }
    float invT = 1.f / temp; std::vector<float> z(V); float mx = -INFINITY;
    for (int j = 0; j < V; j++) { z[j] = logits[j] * invT; if (z[j] > mx) mx = z[j]; }
    std::vector<char> keep(V, 1);
    if (topK > 0 && topK < V) { auto s = z; std::sort(s.begin(), s.end()); float kth = s[V - topK]; for (int j = 0; j < V; j++) keep[j] = z[j] >= kth; }
    std::vector<double> w(V, 0); double total = 0;
    for (int j = 0; j < V; j++) if (keep[j]) { w[j] = std::exp((double)(z[j] - mx)); total += w[j]; }
    if (topP < 1.f) {
        std::vector<int> kept; for (int j = 0; j < V; j++) if (keep[j]) kept.push_back(j);
        std::stable_sort(kept.begin(), kept.end(), [&](int a, int b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
        double before = 0;
        for (size_t r = 0; r < kept.size(); r++) { int j = kept[r]; if (r > 0 && before / total >= topP) keep[j] = 0; before += w[j]; }
        total = 0; for (int j = 0; j < V; j++) if (keep[j]) total += w[j];
    }
    double th = uni(seed, id, step) * total, run = 0; int last = -1;
    for (int j = 0; j < V; j++) { if (!keep[j]) continue; run += w[j]; last = j; if (run > th) return j; }
    return last;
}

void sampling_case(float temp, int topK, float topP) {
    int B = 6, V = 1001;
    auto logits = randn((size_t)B * V, 2);
    for (int j = 0; j < 40; j++) logits[3 * V + j] = 4.f;
    for (int j = 0; j < V; j++) logits[4 * V + j] = (j % 7 == 0) ? 1.5f : -1.f;   // many ties
    std::vector<int> tokens(B, -5), finished(B, 0), ids(B), steps(B);
    finished[5] = 1;
    for (int b = 0; b < B; b++) { ids[b] = 100 + b; steps[b] = 3 * b; }
    int mism = 0;
    for (long long seed : {12345LL, -9LL}) {
        std::fill(finished.begin(), finished.end(), 0); finished[5] = 1;
        // 64 threads rather than the backend's 1024: the kernel takes any multiple of 32, and the emulation stays quick
        emu_launch({(unsigned)B, 1, 1}, 64, 0, [&] {
            smp::sample_tokens(tokens.data(), logits.data(), 0, finished.data(), ids.data(), steps.data(), B, V, seed, temp, topK, topP,
                               2, 7, 11, -1, -1, -1, -1, -1, -1, 0); });
        for (int b = 0; b < B; b++) {
            int want = b == 5 ? 0 : cpu_pick(&logits[(size_t)b * V], V, temp, topK, topP, seed, ids[b], steps[b]);
            if (want != tokens[b]) { mism++; printf("   row %d seed %lld: want %d got %d\n", b, seed, want, tokens[b]); }
            int fin = b == 5 || want == 7 || want == 11;
            if (fin != finished[b]) { mism++; printf("   row %d finished %d\n", b, finished[b]); }
        }
    }
    char name[100]; snprintf(name, sizeof name, "sampling T=%.2f k=%d p=%.2f mismatches", temp, topK, topP);
    check(name, mism, 0);
}

void rmsnorm_case(int N, int C) {
    auto x = randn((size_t)N * C, 1), w = randn(C, 1), dy = randn((size_t)N * C, 1), dx0 = randn((size_t)N * C, 1);
    std::vector<float> out(N * C), rstd(N), dx = dx0, dw(C, 0.5f), dw0 = dw;
    emu_launch({(unsigned)(N + 3) / 4, 1, 1}, 128, 0, [&] { rms::rmsnorm_forward(out.data(), 0, rstd.data(), x.data(), 0, w.data(), 0, N, C, 1e-5f); });
    int rpb = 4, blocks = (N + rpb - 1) / rpb;
    emu_launch({(unsigned)blocks, 1, 1}, 128, C * 4, [&] { rms::rmsnorm_backward(dx.data(), 0, dw.data(), dy.data(), 0, x.data(), 0, w.data(), 0, rstd.data(), N, C, rpb); });
    std::vector<float> rdx = dx0, rdw = dw0, rout(N * C);
    for (int n = 0; n < N; n++) {
        double ss = 0; for (int c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
        float r = 1.f / std::sqrt((float)(ss / C) + 1e-5f);
        double dot = 0; for (int c = 0; c < C; c++) { rout[n * C + c] = w[c] * x[n * C + c] * r; dot += dy[n * C + c] * w[c] * x[n * C + c]; }
        for (int c = 0; c < C; c++) { rdx[n * C + c] += dy[n * C + c] * w[c] * r - x[n * C + c] * dot * r * r * r / C; rdw[c] += dy[n * C + c] * x[n * C + c] * r; }
    }
    check("rmsnorm forward", rel(rout, out), 1e-5);
    check("rmsnorm backward dx", rel(rdx, dx), 1e-5);
    check("rmsnorm backward dw", rel(rdw, dw), 1e-5);
}

void logprob_case(int N, int V) {
    auto z = randn((size_t)N * V, 3);
    std::vector<int> tg(N); for (int n = 0; n < N; n++) tg[n] = (n * 37) % V;
    std::vector<float> lp(N), ent(N), lse(N);
    emu_launch({(unsigned)N, 1, 1}, 256, 0, [&] { lp::token_logprobs(lp.data(), ent.data(), lse.data(), z.data(), 0, tg.data(), N, V); });
    std::vector<float> rlp(N), rent(N);
    for (int n = 0; n < N; n++) { double mx = -1e30; for (int j = 0; j < V; j++) mx = std::max(mx, (double)z[n * V + j]); double s = 0; for (int j = 0; j < V; j++) s += std::exp(z[n * V + j] - mx); double l = mx + std::log(s); rlp[n] = z[n * V + tg[n]] - l; double h = 0; for (int j = 0; j < V; j++) { double p = std::exp(z[n * V + j] - l); h -= p * (z[n * V + j] - l); } rent[n] = h; }
    check("token logprobs", rel(rlp, lp), 1e-5);
    check("token entropy", rel(rent, ent), 1e-5);
}

static long long blocks(long long n) { return (n + 255) / 256; }
void elementwise_cases() {
    printf("-- elementwise\n");
    int N = 37, F = 50, C = 24, V = 11, B = 3, S = 9, Tn = 2;
    auto g = randn(N * F, 2), u = randn(N * F, 1), d = randn(N * F, 1);
    auto gb = tob(g);  // bf16 gate exercises the flags
    std::vector<float> out(N * F), dg(N * F, 0.25f), du(N * F, -0.5f);
    long long n = N * F;
    emu_launch({(unsigned)blocks(n), 1, 1}, 256, 0, [&] { ew::swiglu_forward(out.data(), 0, gb.data(), 1, u.data(), 0, n); });
    emu_launch({(unsigned)blocks(n), 1, 1}, 256, 0, [&] { ew::swiglu_backward(dg.data(), 0, du.data(), 0, d.data(), 0, gb.data(), 1, u.data(), 0, n); });
    std::vector<float> ro(n), rdg(n, 0.25f), rdu(n, -0.5f);
    for (long long i = 0; i < n; i++) { double x = b2f(gb[i]), s = 1 / (1 + std::exp(-x)); ro[i] = x * s * u[i]; rdg[i] += d[i] * u[i] * s * (1 + x * (1 - s)); rdu[i] += d[i] * x * s; }
    check("swiglu forward", rel(ro, out), 1e-6); check("swiglu dgate", rel(rdg, dg), 1e-6); check("swiglu dup", rel(rdu, du), 1e-6);
    // bias backward over 600 rows (three row blocks)
    int R = 600; auto dout = randn((size_t)R * F, 1); std::vector<float> db(F, 1.f), rdb(F, 1.f);
    emu_launch({(unsigned)((F + 255) / 256), 2, 1}, 256, 0, [&] { ew::bias_backward(db.data(), dout.data(), 0, R, F); });
    for (int r = 0; r < R; r++) for (int o = 0; o < F; o++) rdb[o] += dout[(size_t)r * F + o];
    check("bias backward", rel(rdb, db), 1e-5);
    // embedding backward with repeated ids, gather rows backward
    std::vector<int> ids = {3, 5, 3, 0, 10, 5, 3};
    int M = ids.size(); auto dy = randn(M * C, 1); std::vector<float> dt(V * C, 0), rdt(V * C, 0);
    emu_launch({(unsigned)blocks(M * C), 1, 1}, 256, 0, [&] { ew::embedding_backward(dt.data(), ids.data(), dy.data(), 0, M, C, V); });
    for (int m = 0; m < M; m++) for (int c = 0; c < C; c++) rdt[ids[m] * C + c] += dy[m * C + c];
    check("embedding backward", rel(rdt, dt), 1e-6);
    // kv append: cache [B, S, C], x [B, Tn, C] at slots
    auto x = randn(B * Tn * C, 1); std::vector<bf16t> cache(B * S * C, 0); std::vector<int> slots = {0, 4, 7};
    emu_launch({(unsigned)blocks(B * Tn * C), 1, 1}, 256, 0, [&] { ew::kv_append_float(cache.data(), 1, x.data(), 0, slots.data(), B, S, Tn, C); });
    int bad = 0;
    for (int b = 0; b < B; b++) for (int t = 0; t < Tn; t++) for (int c = 0; c < C; c++) if (cache[(b * S + slots[b] + t) * C + c] != f2b(x[(b * Tn + t) * C + c])) bad++;
    check("kv append (bf16 cache, rounded)", bad, 0);
    // sum of squares, several blocks with a grid-stride loop
    auto big = randn(5000, 1); std::vector<float> ss = {0.5f}; double rss = 0.5; for (float vv : big) rss += (double)vv * vv;
    emu_launch({3, 1, 1}, 256, 0, [&] { ew::sum_squares(ss.data(), big.data(), 0, 5000); });
    check("sum of squares", std::fabs(ss[0] - rss) / rss, 1e-6);
}

void rotary_adamw_cases() {
    printf("-- rotary, adamw\n");
    int N = 5, H = 3, D = 8; auto x = randn(N * H * D, 1), x0 = x; std::vector<int> pos = {0, 1, 7, 100, 3};
    std::vector<float> inv(D / 2); for (int i = 0; i < D / 2; i++) inv[i] = (float)(1.0 / std::pow(10000.0, 2.0 * i / D));
    emu_launch({(unsigned)blocks(N * H * D / 2), 1, 1}, 256, 0, [&] { rot::rotary(x.data(), 0, pos.data(), inv.data(), N, H, D, 1.f); });
    std::vector<float> rx(x0);
    for (int n = 0; n < N; n++) for (int h = 0; h < H; h++) for (int i = 0; i < D / 2; i++) {
        float a = pos[n] * inv[i]; double c = std::cos(a), s = std::sin(a); size_t o = (n * H + h) * D;
        rx[o + i] = x0[o + i] * c - x0[o + i + D / 2] * s; rx[o + i + D / 2] = x0[o + i + D / 2] * c + x0[o + i] * s; }
    check("rotary", rel(rx, x), 1e-5);
    emu_launch({(unsigned)blocks(N * H * D / 2), 1, 1}, 256, 0, [&] { rot::rotary(x.data(), 0, pos.data(), inv.data(), N, H, D, -1.f); });
    check("rotary then back", rel(x0, x), 1e-5);
    int n = 300; auto p = randn(n, 1), gr = randn(n, 1), m = randn(n, 0.1f); std::vector<float> v(n, 0.01f), rp = p, rm = m, rv = v; float scaleDev = 0.5f;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f; int step = 3;
    double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    emu_launch({(unsigned)blocks(n), 1, 1}, 256, 0, [&] { adw::adamw(p.data(), 0, gr.data(), m.data(), v.data(), n, b1, b2, eps, 1 - lr * wd, (float)(lr / bc1), (float)std::sqrt(bc2), 2.f, &scaleDev); });
    for (int i = 0; i < n; i++) { double g = gr[i] * 2.0 * 0.5; rm[i] = b1 * rm[i] + (1 - b1) * g; rv[i] = b2 * rv[i] + (1 - b2) * g * g;
        rp[i] = rp[i] * (1 - lr * wd) - lr / bc1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + eps); }
    check("adamw param", rel(rp, p), 1e-5); check("adamw m", rel(rm, m), 1e-6); check("adamw v", rel(rv, v), 1e-6);
}

void logprob_backward_case(int N, int V) {
    printf("-- logprob backward, log softmax\n");
    auto z = randn((size_t)N * V, 3);
    std::vector<int> tg(N); for (int n = 0; n < N; n++) tg[n] = (n * 37) % V;
    std::vector<float> lp(N), ent(N), lse(N), dz(N * V, 0.1f), dlp = randn(N, 1), dent = randn(N, 1), ls(N * V);
    emu_launch({(unsigned)N, 1, 1}, 256, 0, [&] { lp::token_logprobs(lp.data(), ent.data(), lse.data(), z.data(), 0, tg.data(), N, V); });
    emu_launch({(unsigned)N, 1, 1}, 256, 0, [&] { lp::token_logprobs_backward(dz.data(), 0, dlp.data(), dent.data(), z.data(), 0, lse.data(), ent.data(), tg.data(), N, V); });
    emu_launch({(unsigned)N, 1, 1}, 256, 0, [&] { lp::log_softmax(ls.data(), 0, z.data(), 0, N, V); });
    std::vector<float> rdz(N * V, 0.1f), rls(N * V);
    for (int n = 0; n < N; n++) for (int j = 0; j < V; j++) {
        double l = z[n * V + j] - lse[n], p = std::exp(l);
        rdz[n * V + j] += -dlp[n] * p - dent[n] * p * (l + ent[n]) + (j == tg[n] ? dlp[n] : 0); rls[n * V + j] = l; }
    check("token logprobs backward", rel(rdz, dz), 1e-5); check("log softmax", rel(rls, ls), 1e-5);
}

int main(int argc, char** argv) {
    std::string only = argc > 1 ? argv[1] : "";
    if (only == "" || only == "ew") { elementwise_cases(); rotary_adamw_cases(); logprob_backward_case(4, 777); }
    if (only == "" || only == "rms") rmsnorm_case(13, 96);
    if (only == "" || only == "lp") logprob_case(5, 1003);
    if (only == "" || only == "dec") {
        decode_case<const bf16t*>(true, 3, 40, 4, 4, 64, 0, dec64b::decode_attention);
        decode_case<const bf16t*>(true, 3, 40, 12, 2, 64, 0, dec64b::decode_attention);
        decode_case<const bf16t*>(true, 2, 33, 8, 2, 128, 5, dec128b::decode_attention);
        decode_case<const float*>(false, 3, 40, 4, 2, 16, 0, dec16f::decode_attention);
    }
    if (only == "" || only == "smp") {
        sampling_case(1, 20, 1);
        sampling_case(1, 0, 0.9f); sampling_case(0.8f, 50, 0.5f); sampling_case(1.3f, 1, 1); sampling_case(1, 0, 0.05f);
    }
    if (only == "" || only == "att") {
        attention_case(3, 37, 4, 2, 16, 0, fl16::flash_forward, fl16::flash_backward, fl16::attention_delta, fl16::attention_dq_finish);
        attention_case(3, 70, 4, 2, 16, 9, fl16::flash_forward, fl16::flash_backward, fl16::attention_delta, fl16::attention_dq_finish);
        attention_case(2, 70, 2, 1, 64, 0, fl64::flash_forward, fl64::flash_backward, fl64::attention_delta, fl64::attention_dq_finish);
        attention_case(2, 70, 4, 2, 128, 0, fl128::flash_forward, fl128::flash_backward, fl128::attention_delta, fl128::attention_dq_finish);
        attention_case(3, 130, 2, 2, 32, 13, fl32::flash_forward, fl32::flash_backward, fl32::attention_delta, fl32::attention_dq_finish);
    }
    printf("%d failures\n", failures);
    return failures != 0;
}
