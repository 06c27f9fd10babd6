// Rotary position embedding as HF's rotate_half: the pairs are (i, i + D/2) of each head, turned by
// the angle positions[n] * inv_freq[i] (an fp32 product). inv_freq (D/2 floats) comes from the host,
// the very floats the CPU backend uses.

// x: N rows of H heads of D values, turned in place; sign = -1 turns back (the backward pass).
extern "C" __global__ void rotary(void* x, int bf, const int* pos, const float* inv_freq, int N, int H, int D, float sign) {
    long long i = global_index();
    int half = D / 2;
    if (i >= (long long)N * H * half) return;
    int k = (int)(i % half);
    long long nh = i / half;
    int n = (int)(nh / H);
    float angle = (float)pos[n] * inv_freq[k];
    float c = cosf(angle), s = sign * sinf(angle);
    long long off = nh * D;
    float a = ldf(x, off + k, bf), b = ldf(x, off + k + half, bf);
    stf(x, off + k, bf, a * c - b * s);
    stf(x, off + k + half, bf, b * c + a * s);
}
