package org.sparkrlhf.gpuexec.train;

import org.sparkrlhf.gpuexec.backend.AdamWStep;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * AdamW over a parameter table, as torch.optim.AdamW (decoupled weight decay, bias correction),
 * with clipping by the global gradient norm as torch.nn.utils.clip_grad_norm_ (scale
 * max_norm / (norm + 1e-6) when that is below 1). By default 1-D parameters (norm weights,
 * biases) get no weight decay.
 *
 * <p>Gradient accumulation: the model's backward adds into the gradients, so run forward and
 * backward for each micro-batch, then {@link #step}, then zero the gradients. Each micro-batch's
 * loss scale is the caller's: give each the scale of the whole batch's loss (see
 * {@link org.sparkrlhf.gpuexec.model.SftLoss#of(org.sparkrlhf.gpuexec.model.Batch,
 * org.sparkrlhf.gpuexec.model.TokenStats, int)}).
 */
public final class AdamW implements AutoCloseable {
    /** @param maxGradNorm clip the global gradient norm to this; 0 or less: no clipping */
    public record Hyper(float lr, float beta1, float beta2, float eps, float weightDecay, float maxGradNorm) {
        public static Hyper defaults(float lr) {
            return new Hyper(lr, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f);
        }
    }

    /** One parameter: its tensor, gradient, moments and whether weight decay applies. */
    public record Param(String name, Tensor value, Tensor grad, Tensor m, Tensor v, boolean decays) {
    }

    /** What a step did: the global gradient norm before clipping and the scale applied to gradients. */
    public record StepInfo(int step, float gradNorm, float clipScale) {
    }

    private final Backend backend;
    private final List<Param> params;
    private final Tensor normAcc;
    private Hyper hyper;
    private int steps;

    public AdamW(Backend backend, List<Param> params, Hyper hyper) {
        this.backend = backend;
        this.params = Collections.unmodifiableList(params);
        this.hyper = hyper;
        this.normAcc = backend.allocate(DType.F32, 1);
    }

    /** An optimizer for every parameter of a model (moments allocated here, zero). */
    public static AdamW forModel(LlamaModel model, Hyper hyper) {
        Backend b = model.backend();
        LlamaWeights p = model.parameters(), g = model.gradients();
        List<Param> list = new ArrayList<>();
        for (LlamaWeights.Spec s : p.specs()) {
            list.add(new Param(s.name(), p.get(s.name()), g.get(s.name()),
                    b.allocate(DType.F32, s.shape()), b.allocate(DType.F32, s.shape()), s.decays()));
        }
        return new AdamW(b, list, hyper);
    }

    public List<Param> params() {
        return params;
    }

    public Hyper hyper() {
        return hyper;
    }

    /** Changes the hyper-parameters (a learning-rate schedule) for the next steps. */
    public void setHyper(Hyper h) {
        this.hyper = h;
    }

    public int stepCount() {
        return steps;
    }

    /** The global L2 norm of all gradients. */
    public float gradNorm() {
        backend.zero(normAcc);
        for (Param p : params) backend.sumSquares(normAcc, p.grad());
        return (float) Math.sqrt(backend.download(normAcc)[0]);
    }

    /** Clips (if configured) and updates every parameter; does not zero the gradients. */
    public StepInfo step() {
        return step(gradNorm());
    }

    /**
     * {@link #step()} with the global gradient norm given: under tensor or pipeline parallelism
     * this optimizer holds a shard's parameters and the norm is the whole model's, summed over
     * the ranks by the caller.
     */
    public StepInfo step(float norm) {
        if (!Float.isFinite(norm)) throw new ArithmeticException("gradient norm is " + norm + " at step " + (steps + 1));
        float scale = 1f;
        if (hyper.maxGradNorm() > 0) {
            float coef = hyper.maxGradNorm() / (norm + 1e-6f);
            if (coef < 1f) scale = coef;
        }
        steps++;
        for (Param p : params) {
            backend.adamw(p.value(), p.grad(), p.m(), p.v(), new AdamWStep(hyper.lr(), hyper.beta1(), hyper.beta2(),
                    hyper.eps(), p.decays() ? hyper.weightDecay() : 0f, scale, steps));
        }
        return new StepInfo(steps, norm, scale);
    }

    @Override
    public void close() {
        for (Param p : params) {
            backend.free(p.m());
            backend.free(p.v());
        }
        backend.free(normAcc);
    }
}
