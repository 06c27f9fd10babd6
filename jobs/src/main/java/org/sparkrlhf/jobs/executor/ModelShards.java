package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.Map;

/**
 * The model object a rank builds from its slices of the parameters: on a data-parallel layout
 * (tp = pp = 1) the engine's whole {@link LlamaModel}; under tensor or pipeline parallelism this
 * rank's shard of it (its {@link ShardSpec} from its place in the placement, the same cut as the
 * planner's ShardLayout), with stand-in groups that each call binds to its own.
 */
public final class ModelShards {
    private ModelShards() {
    }

    /**
     * A rank's model-to-be: its shard's parameter tensors allocated on the rank's backend (zeros, F32)
     * for a reallocation to receive into, with the config and cut they are for.
     */
    public record Allocated(Backend backend, ModelConfig config, Placement placement, int rank, LlamaWeights weights) {
        /** The parameter tensors by Hugging Face name. */
        public Map<String, Tensor> tensors() {
            return weights.byName();
        }

        /** Frees the tensors (a reallocation that failed before the model was built). */
        public void free() {
            weights.free(backend);
        }
    }

    /**
     * Allocates the parameter tensors of the rank's model on {@code backend} (the rank's,
     * {@link RankContext#backend()}), cut as its place in {@code placement} says. With
     * {@code valueHead} the model has a value head whatever the source's config.json says (a critic
     * started from a causal LM carries the value head it was given, see Critics).
     */
    public static Allocated allocate(Backend backend, ModelSource source, Placement placement, int rank, boolean valueHead) {
        ModelConfig config = ModelConfig.read(source.localPath().resolve("config.json"));
        if (valueHead && config.head() != ModelConfig.Head.SCORE) {
            config = config.withHead(ModelConfig.Head.SCORE);
        }
        try {
            return new Allocated(backend, config, placement, rank,
                    LlamaModel.allocateShard(backend, config, Groups.of(placement, rank).shard, DType.F32));
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(placement.call() + " rank " + rank + ": " + e.getMessage(), e);
        }
    }

    /**
     * The rank's model over its filled parameter tensors, with a fresh optimizer when {@code optimizer}
     * is given (a trained copy whose optimizer state starts here).
     */
    public static ResidentModel build(Allocated parameters, long version, OptimizerConfig optimizer) {
        Groups g = Groups.of(parameters.placement(), parameters.rank());
        LlamaModel model;
        try {
            model = LlamaModel.over(parameters.backend(), parameters.config(), g.shard, g.tensor, g.pipeline,
                    parameters.weights());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(parameters.placement().call() + " rank " + parameters.rank() + ": "
                    + e.getMessage(), e);
        }
        return g.resident(model, optimizer, version);
    }

    /**
     * The rank's model read from a checkpoint folder: the whole model on a data-parallel layout, else
     * only the tensors its shard holds, cut to its slices. With {@code optimizer}, a trained version
     * (not 0) gets the folder's optimizer state ({@link OptimizerState#FILE}), cut as the weights.
     */
    public static ResidentModel load(Backend backend, ModelSource source, Placement placement, int rank, long version,
                                     OptimizerConfig optimizer) {
        Groups g = Groups.of(placement, rank);
        LlamaModel model = LlamaModel.load(backend, source.localPath(), g.shard, g.tensor, g.pipeline);
        return withOptimizerState(g.resident(model, optimizer, version), source, version);
    }

    /**
     * The rank's copy cut from a whole model built on this executor (a critic with a fresh value
     * head, which no checkpoint folder holds): the model itself on a data-parallel layout, else its
     * shard (the whole model is then closed). A trained copy (with {@code optimizer}) of a version
     * other than 0 gets the optimizer state of {@code source}, the checkpoint folder it was built from.
     */
    public static ResidentModel fromWhole(LlamaModel whole, Placement placement, int rank, long version,
                                          OptimizerConfig optimizer, ModelSource source) {
        Groups g = Groups.of(placement, rank);
        if (g.shard.equals(ShardSpec.WHOLE)) {
            return withOptimizerState(g.resident(whole, optimizer, version), source, version);
        }
        LlamaModel model;
        try {
            model = LlamaModel.shardOf(whole.backend(), whole, g.shard, g.tensor, g.pipeline);
        } finally {
            whole.close();
        }
        return withOptimizerState(g.resident(model, optimizer, version), source, version);
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

    /** A rank's shard of a placement (the whole model without one) and its stand-in groups. */
    private record Groups(ShardSpec shard, BoundCollective tensor, BoundCollective pipeline) {
        static Groups of(Placement placement, int rank) {
            ShardSpec shard = placement == null ? ShardSpec.WHOLE
                    : ShardSpec.ofLocalRank(rank, placement.dp(), placement.tp(), placement.pp());
            return new Groups(shard, new BoundCollective("tensor-parallel", shard.tpRank(), shard.tp()),
                    new BoundCollective("pipeline", shard.stage(), shard.pp()));
        }

        /** The resident copy of the rank's model, with a fresh optimizer when {@code optimizer} is given. */
        ResidentModel resident(LlamaModel model, OptimizerConfig optimizer, long version) {
            AdamW adamW = optimizer == null ? null : AdamW.forModel(model, SftTrainCall.hyper(optimizer));
            return ResidentModel.sharded(model, adamW, tensor, pipeline, version);
        }
    }
}
