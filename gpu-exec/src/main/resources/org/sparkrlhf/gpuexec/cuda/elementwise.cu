// One thread per element: copies and casts, residual adds, SwiGLU, embeddings, row gathers.
// Float tensors come as void* with a flag per tensor (1: BF16, 0: F32); I32 tensors as int*.

extern "C" __global__ void copy_float(void* dst, int dst_bf, const void* src, int src_bf, long long n) {
    long long i = global_index();
    if (i < n) stf(dst, i, dst_bf, ldf(src, i, src_bf));
}

extern "C" __global__ void scale_float(void* x, int bf, float s, long long n) {
    long long i = global_index();
    if (i < n) stf(x, i, bf, ldf(x, i, bf) * s);
}

// out = a + b (out may be a or b).
extern "C" __global__ void add_float(void* out, int out_bf, const void* a, int a_bf, const void* b, int b_bf, long long n) {
    long long i = global_index();
    if (i < n) stf(out, i, out_bf, ldf(a, i, a_bf) + ldf(b, i, b_bf));
}

extern "C" __global__ void add_int(int* x, int delta, long long n) {
    long long i = global_index();
    if (i < n) x[i] += delta;
}

// out[0] += sum of x^2: each block sums its part in float, then one atomic add.
extern "C" __global__ void sum_squares(float* out, const void* x, int bf, long long n) {
    __shared__ float scratch[32];
    float s = 0.f;
    for (long long i = global_index(); i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = ldf(x, i, bf);
        s += v * v;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) atomicAdd(out, s);
}

// out[n, :] = table[ids[n], :]. Ids are checked on the host side only when they come from the host;
// an id outside [0, V) here gives a zero row rather than a read out of bounds.
extern "C" __global__ void embedding_forward(void* out, int out_bf, const int* ids, const void* table, int table_bf,
                                             int N, int C, int V) {
    long long i = global_index();
    if (i >= (long long)N * C) return;
    int n = (int)(i / C), c = (int)(i % C);
    int id = ids[n];
    stf(out, i, out_bf, (id >= 0 && id < V) ? ldf(table, (long long)id * C + c, table_bf) : 0.f);
}

// dtable[ids[n], :] += dout[n, :] into an F32 table gradient (rows that share an id add up).
extern "C" __global__ void embedding_backward(float* dtable, const int* ids, const void* dout, int dout_bf,
                                              int N, int C, int V) {
    long long i = global_index();
    if (i >= (long long)N * C) return;
    int n = (int)(i / C), c = (int)(i % C);
    int id = ids[n];
    if (id >= 0 && id < V) atomicAdd(&dtable[(long long)id * C + c], ldf(dout, i, dout_bf));
}

// out[m, :] = in[rows[m], :].
extern "C" __global__ void gather_rows(void* out, int out_bf, const void* in, int in_bf, const int* rows, int M, int C) {
    long long i = global_index();
    if (i >= (long long)M * C) return;
    int m = (int)(i / C), c = (int)(i % C);
    stf(out, i, out_bf, ldf(in, (long long)rows[m] * C + c, in_bf));
}

// din[rows[m], :] += dout[m, :] into an F32 gradient (rows may repeat).
extern "C" __global__ void gather_rows_backward(float* din, const void* dout, int dout_bf, const int* rows, int M, int C) {
    long long i = global_index();
    if (i >= (long long)M * C) return;
    int m = (int)(i / C), c = (int)(i % C);
    atomicAdd(&din[(long long)rows[m] * C + c], ldf(dout, i, dout_bf));
}

// out[n, o] += bias[o].
extern "C" __global__ void bias_add(void* out, int out_bf, const void* bias, int bias_bf, int N, int OC) {
    long long i = global_index();
    if (i >= (long long)N * OC) return;
    addf(out, i, out_bf, ldf(bias, i % OC, bias_bf));
}

// dbias[o] += sum_n dout[n, o] into F32: each thread sums blocks of 256 rows of one column, one atomic add each.
extern "C" __global__ void bias_backward(float* dbias, const void* dout, int dout_bf, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    for (int r0 = blockIdx.y * 256; r0 < N; r0 += gridDim.y * 256) {
        int r1 = min(N, r0 + 256);
        float s = 0.f;
        for (int r = r0; r < r1; r++) s += ldf(dout, (long long)r * OC + o, dout_bf);
        atomicAdd(&dbias[o], s);
    }
}

// out = silu(gate) * up.
extern "C" __global__ void swiglu_forward(void* out, int out_bf, const void* gate, int gate_bf, const void* up, int up_bf,
                                          long long n) {
    long long i = global_index();
    if (i >= n) return;
    float g = ldf(gate, i, gate_bf), u = ldf(up, i, up_bf);
    stf(out, i, out_bf, g / (1.f + expf(-g)) * u);
}

// dgate += dout * up * s (1 + g (1 - s)), dup += dout * g s, with s = sigmoid(g). Either may be null.
extern "C" __global__ void swiglu_backward(void* dgate, int dgate_bf, void* dup, int dup_bf, const void* dout, int dout_bf,
                                           const void* gate, int gate_bf, const void* up, int up_bf, long long n) {
    long long i = global_index();
    if (i >= n) return;
    float g = ldf(gate, i, gate_bf), u = ldf(up, i, up_bf), d = ldf(dout, i, dout_bf);
    float s = 1.f / (1.f + expf(-g));
    if (dgate != nullptr) addf(dgate, i, dgate_bf, d * u * s * (1.f + g * (1.f - s)));
    if (dup != nullptr) addf(dup, i, dup_bf, d * g * s);
}

// cache[b, slots[b] + t, :] = x[b, t, :] for float caches (x: B*Tn rows of C).
extern "C" __global__ void kv_append_float(void* cache, int cache_bf, const void* x, int x_bf, const int* slots,
                                           int B, int S, int Tn, int C) {
    long long i = global_index();
    if (i >= (long long)B * Tn * C) return;
    int c = (int)(i % C);
    long long bt = i / C;
    int t = (int)(bt % Tn), b = (int)(bt / Tn);
    int slot = slots[b] + t;
    if (slot < 0 || slot >= S) return;
    stf(cache, ((long long)b * S + slot) * C + c, cache_bf, ldf(x, i, x_bf));
}

extern "C" __global__ void kv_append_int(int* cache, const int* x, const int* slots, int B, int S, int Tn, int C) {
    long long i = global_index();
    if (i >= (long long)B * Tn * C) return;
    int c = (int)(i % C);
    long long bt = i / C;
    int t = (int)(bt % Tn), b = (int)(bt / Tn);
    int slot = slots[b] + t;
    if (slot < 0 || slot >= S) return;
    cache[((long long)b * S + slot) * C + c] = x[i];
}
