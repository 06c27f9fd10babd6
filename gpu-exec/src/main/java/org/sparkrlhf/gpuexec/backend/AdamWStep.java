package org.sparkrlhf.gpuexec.backend;

/**
 * One AdamW update as PyTorch's {@code torch.optim.AdamW} computes it (decoupled weight decay,
 * bias correction), for {@link Backend#adamw}:
 *
 * <pre>
 *   g = grad * gradScale                    // gradScale carries global-norm clipping
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g * g
 *   param = param * (1 - lr * weightDecay)
 *   param = param - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * </pre>
 *
 * @param step the 1-based step count used in the bias corrections
 */
public record AdamWStep(float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale, int step) {
    public AdamWStep {
        if (step < 1) throw new IllegalArgumentException("AdamW step count starts at 1, got " + step);
    }
}
