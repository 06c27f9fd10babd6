// AdamW as torch.optim.AdamW (see AdamWStep): grad, m, v are F32; param is F32 or BF16.
// step_size = lr / (1 - beta1^step) and bc2_sqrt = sqrt(1 - beta2^step) come from the host (in
// double, then rounded, as the CPU backend does). grad_scale_ptr (nullable) multiplies grad_scale
// by a device value: global-norm clipping without a round trip to the host.
extern "C" __global__ void adamw(void* param, int p_bf, const float* grad, float* m, float* v, long long n,
                                 float beta1, float beta2, float eps, float decay, float step_size, float bc2_sqrt,
                                 float grad_scale, const float* grad_scale_ptr) {
    long long i = global_index();
    if (i >= n) return;
    float gs = grad_scale_ptr == nullptr ? grad_scale : grad_scale * grad_scale_ptr[0];
    float g = grad[i] * gs;
    float mi = beta1 * m[i] + (1.f - beta1) * g;
    float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    stf(param, i, p_bf, ldf(param, i, p_bf) * decay - step_size * mi / denom);
}
