package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW over one rank's shard, clipping by the whole model's gradient norm, so that a step on
 * every shard equals the unsharded {@link AdamW#step()}: the sum of squares counts split tensors
 * on every tensor rank, replicated tensors once (tensor rank 0) and the tied embedding's copy on
 * the last stage not at all, and is summed over the tensor group, then over the pipeline group.
 * Every rank of the model-parallel group must call {@link #step} together. Under data
 * parallelism, all-reduce the gradients over the data group first; the norm is then the same on
 * every data rank.
 */
public final class ShardedAdamW implements AutoCloseable {
    private final ShardedLlama model;
    private final AdamW optimizer;
    private final Backend backend;
    private final Tensor normAcc;

    public ShardedAdamW(ShardedLlama model, AdamW.Hyper hyper) {
        this.model = model;
        this.backend = model.backend();
        List<AdamW.Param> list = new ArrayList<>();
        for (LlamaWeights.Spec s : model.specs()) {
            list.add(new AdamW.Param(s.name(), model.parameters().get(s.name()), model.gradients().get(s.name()),
                    backend.allocate(DType.F32, s.shape()), backend.allocate(DType.F32, s.shape()), s.decays()));
        }
        this.optimizer = new AdamW(backend, list, hyper);
        this.normAcc = backend.allocate(DType.F32, 1);
    }

    /** The shard's optimizer (its parameters, moments, hyper-parameters and step count). */
    public AdamW optimizer() {
        return optimizer;
    }

    /**
     * Restores this shard's part of a whole model's optimizer state ({@link OptimizerState}'s file,
     * as a data-parallel run or a gathered tensor / pipeline run writes it): each moment cut to this
     * shard's slice exactly as {@link ShardedLlama#load} cuts the weights, and the step count.
     */
    public void load(Path file) {
        Map<String, int[]> whole = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(model.config())) {
            whole.put(s.name(), s.shape());
        }
        ShardSpec shard = model.shard();
        OptimizerState.load(optimizer, file, whole, (name, shape, values) -> Sharding.slice(name, shape, values, shard));
    }

    /** The global L2 norm of the whole model's gradients (a collective over the tensor and pipeline groups). */
    public float globalGradNorm() {
        backend.zero(normAcc);
        for (AdamW.Param p : optimizer.params()) {
            if (model.countsInGlobalNorm(p.name())) backend.sumSquares(normAcc, p.grad());
        }
        float[] sum = backend.download(normAcc);
        model.tpGroup().allReduceSum(sum);
        model.ppGroup().allReduceSum(sum);
        return (float) Math.sqrt(sum[0]);
    }

    /** Clips by the global norm (if configured) and updates this shard's parameters; does not zero the gradients. */
    public AdamW.StepInfo step() {
        return optimizer.step(globalGradNorm());
    }

    @Override
    public void close() {
        optimizer.close();
        backend.free(normAcc);
    }
}
