package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.parallel.ShardedAdamW;
import org.sparkrlhf.gpuexec.parallel.ShardedLlama;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.nio.file.Path;
import java.util.Map;

/**
 * The model object a rank builds from its slices of the parameters: on a data-parallel layout
 * (tp = pp = 1) the engine's whole {@link LlamaModel}; under tensor or pipeline parallelism this
 * rank's {@link ShardedLlama} (its {@link ShardSpec} from its place in the placement, the same cut
 * as the planner's ShardLayout), with stand-in groups that each call binds to its own.
 */
public final class ModelShards {
    private ModelShards() {
    }

    /**
     * The rank's model from its slices ({@code tensors}: HF name to row-major slice), with a fresh
     * optimizer when {@code optimizer} is given (a trained copy whose optimizer state starts here).
     * With {@code valueHead} the model has a value head whatever the source's config.json says (a
     * critic started from a causal LM carries the value head it was given, see Critics). The model
     * lives on {@code backend} (the rank's, {@link RankContext#backend()}).
     */
    public static ResidentModel build(Backend backend, ModelSource source, Placement placement, int rank, long version,
                                      Map<String, float[]> tensors, OptimizerConfig optimizer, boolean valueHead) {
        ModelConfig config = ModelConfig.read(source.localPath().resolve("config.json"));
        if (valueHead && config.head() != ModelConfig.Head.SCORE) {
            config = config.withHead(ModelConfig.Head.SCORE);
        }
        if (placement.tp() != 1 || placement.pp() != 1) {
            return sharded(backend, config, placement, rank, version, tensors, optimizer);
        }
        LlamaModel model = LlamaModel.random(backend, config, DType.F32, 0, 0f);
        LlamaWeights params = model.parameters();
        for (LlamaWeights.Spec s : params.specs()) {
            float[] values = tensors.get(s.name());
            if (values == null || values.length != params.get(s.name()).numel()) {
                model.close();
                throw new IllegalStateException(placement.call() + " rank " + rank + ": " + s.name() + ": "
                        + (values == null ? "no slice" : values.length + " elements, the model needs "
                        + params.get(s.name()).numel()));
            }
            model.backend().upload(params.get(s.name()), values);
        }
        AdamW adamW = optimizer == null ? null : AdamW.forModel(model, SftTrainCall.hyper(optimizer));
        return new ResidentModel(model, adamW, version);
    }

    /**
     * The rank's model read from a checkpoint folder: the whole model on a data-parallel layout, else
     * only the tensors its shard holds, cut to its slices. With {@code optimizer}, a trained version
     * (not 0) gets the folder's optimizer state ({@link OptimizerState#FILE}), cut as the weights.
     */
    public static ResidentModel load(Backend backend, ModelSource source, Placement placement, int rank, long version,
                                     OptimizerConfig optimizer) {
        Path dir = source.localPath();
        if (placement == null || (placement.tp() == 1 && placement.pp() == 1)) {
            LlamaModel model = LlamaModel.load(backend, dir);
            return withOptimizerState(new ResidentModel(model, optimizer == null ? null
                    : AdamW.forModel(model, SftTrainCall.hyper(optimizer)), version), source, version);
        }
        ShardSpec shard = ShardSpec.ofLocalRank(rank, placement.dp(), placement.tp(), placement.pp());
        BoundCollective tensorGroup = new BoundCollective("tensor-parallel", shard.tpRank(), shard.tp());
        BoundCollective pipelineGroup = new BoundCollective("pipeline", shard.stage(), shard.pp());
        ShardedLlama model = ShardedLlama.load(backend, dir, shard, tensorGroup, pipelineGroup);
        ShardedAdamW adamW = optimizer == null ? null : new ShardedAdamW(model, SftTrainCall.hyper(optimizer));
        return withOptimizerState(ResidentModel.sharded(model, adamW, tensorGroup, pipelineGroup, version), source,
                version);
    }

    /**
     * The rank's copy cut from a whole model built on this executor (a critic with a fresh value
     * head, which no checkpoint folder holds): the model itself on a data-parallel layout, else its
     * shard (the whole model is then closed). A trained copy (with {@code optimizer}) of a version
     * other than 0 gets the optimizer state of {@code source}, the checkpoint folder it was built from.
     */
    public static ResidentModel fromWhole(LlamaModel whole, Placement placement, int rank, long version,
                                          OptimizerConfig optimizer, ModelSource source) {
        if (placement == null || (placement.tp() == 1 && placement.pp() == 1)) {
            return withOptimizerState(new ResidentModel(whole, optimizer == null ? null
                    : AdamW.forModel(whole, SftTrainCall.hyper(optimizer)), version), source, version);
        }
        ShardSpec shard = ShardSpec.ofLocalRank(rank, placement.dp(), placement.tp(), placement.pp());
        BoundCollective tensorGroup = new BoundCollective("tensor-parallel", shard.tpRank(), shard.tp());
        BoundCollective pipelineGroup = new BoundCollective("pipeline", shard.stage(), shard.pp());
        ShardedLlama model;
        try {
            model = ShardedLlama.fromModel(whole.backend(), whole, shard, tensorGroup, pipelineGroup);
        } finally {
            whole.close();
        }
        ShardedAdamW adamW = optimizer == null ? null : new ShardedAdamW(model, SftTrainCall.hyper(optimizer));
        return withOptimizerState(ResidentModel.sharded(model, adamW, tensorGroup, pipelineGroup, version), source,
                version);
    }

    /**
     * A trained copy of a version other than 0 continues its optimizer: the moments and step count of
     * {@code source}'s {@link OptimizerState#FILE} (the checkpoint that holds this version), cut to the
     * copy's slices. A copy without an optimizer, or at version 0 (a fresh optimizer), is left as it is.
     */
    private static ResidentModel withOptimizerState(ResidentModel copy, ModelSource source, long version) {
        if (!copy.hasOptimizer() || version == 0) {
            return copy;
        }
        try {
            if (source == null || source.version() != version) {
                throw new IllegalStateException("the optimizer state of version " + version + " is not in "
                        + (source == null ? "(no source)" : source.path() + ", which holds version " + source.version()));
            }
            copy.loadOptimizerState(source.localPath().resolve(OptimizerState.FILE));
            return copy;
        } catch (RuntimeException e) {
            copy.close();
            throw e;
        }
    }

    private static ResidentModel sharded(Backend backend, ModelConfig config, Placement placement, int rank, long version,
                                         Map<String, float[]> tensors, OptimizerConfig optimizer) {
        ShardSpec shard = ShardSpec.ofLocalRank(rank, placement.dp(), placement.tp(), placement.pp());
        BoundCollective tensorGroup = new BoundCollective("tensor-parallel", shard.tpRank(), shard.tp());
        BoundCollective pipelineGroup = new BoundCollective("pipeline", shard.stage(), shard.pp());
        ShardedLlama model = new ShardedLlama(backend, config, shard, tensorGroup, pipelineGroup, tensors);
        ShardedAdamW adamW = optimizer == null ? null : new ShardedAdamW(model, SftTrainCall.hyper(optimizer));
        return ResidentModel.sharded(model, adamW, tensorGroup, pipelineGroup, version);
    }
}
