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
    /** The model (shard) whose parameters these are, for the whole model's gradient norm; null: the parameters are all there is. */
    private final LlamaModel model;
    private final Tensor normAcc;
    private Hyper hyper;
    private int steps;

    public AdamW(Backend backend, List<Param> params, Hyper hyper) {
        this(backend, params, hyper, null);
    }

    private AdamW(Backend backend, List<Param> params, Hyper hyper, LlamaModel model) {
        this.backend = backend;
        this.params = Collections.unmodifiableList(params);
        this.model = model;
        this.hyper = hyper;
        this.normAcc = backend.allocate(DType.F32, 1);
    }

    /**
     * An optimizer for every parameter of a model, or of one rank's shard of it (moments allocated
     * here, zero). On a shard, every rank of the model-parallel group must call {@link #step()}
     * together: the clipping norm is the whole model's (see {@link #gradNorm()}), so a step on every
     * shard equals the step of the whole model. Under data parallelism, all-reduce the gradients
     * over the data group first; the norm is then the same on every data rank.
     */
    public static AdamW forModel(LlamaModel model, Hyper hyper) {
        Backend b = model.backend();
        LlamaWeights p = model.parameters(), g = model.gradients();
        List<Param> list = new ArrayList<>();
        for (LlamaWeights.Spec s : p.specs()) {
            list.add(new Param(s.name(), p.get(s.name()), g.get(s.name()),
                    b.allocate(DType.F32, s.shape()), b.allocate(DType.F32, s.shape()), s.decays()));
        }
        return new AdamW(b, list, hyper, model);
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

    /** The backend holding the parameters and moments (for {@link OptimizerState}). */
    public Backend backend() {
        return backend;
    }

    /** Sets the step count (the bias corrections' t) when the moments are restored from a checkpoint. */
    public void restoreStepCount(int stepCount) {
        if (stepCount < 0) throw new IllegalArgumentException("step count " + stepCount + " is negative");
        this.steps = stepCount;
    }

    /**
     * The global L2 norm of all gradients. Over a shard's parameters it is the whole model's: the
     * sum of squares counts split tensors on every tensor rank, replicated ones once (tensor rank
     * 0) and the tied embedding's copy on the last stage not at all, and is summed over the tensor
     * group, then over the pipeline group (a collective).
     */
    public float gradNorm() {
        backend.zero(normAcc);
        for (Param p : params) {
            if (model == null || model.countsInGlobalNorm(p.name())) backend.sumSquares(normAcc, p.grad());
        }
        float[] sum = backend.download(normAcc);
        if (model != null) {
            model.tpGroup().allReduceSum(sum);
            model.ppGroup().allReduceSum(sum);
        }
        return (float) Math.sqrt(sum[0]);
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
