package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ModelShards;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.nio.file.Path;

/**
 * The critic: a value model with a scalar head on every position. It starts from
 * {@code models.critic}: a ...ForSequenceClassification checkpoint (a reward model) is loaded as
 * it is; a causal LM (the actor's checkpoint) keeps its decoder and gets a fresh value head in
 * place of its LM head, drawn from N(0, 1 / (hidden + 1)) with a fixed seed (as OpenRLHF), so that
 * every data-parallel replica starts identical.
 */
public final class Critics {
    private Critics() {
    }

    /** The critic from {@code dir}: its own score head, or the decoder of a causal LM with a fresh one. */
    public static LlamaModel load(Backend backend, Path dir, long headSeed) {
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        if (config.head() == ModelConfig.Head.SCORE) {
            return LlamaModel.load(backend, dir);
        }
        ModelConfig critic = config.withHead(ModelConfig.Head.SCORE);
        LlamaModel model = LlamaModel.random(backend, critic, DType.F32, headSeed, 1f / (critic.hiddenSize() + 1));
        CheckpointWeights weights = CheckpointWeights.open(dir);
        for (LlamaWeights.Spec s : model.parameters().specs()) {
            if (s.name().equals("score.weight")) {
                continue;
            }
            if (!weights.has(s.name())) {
                model.close();
                throw new IllegalArgumentException(dir + ": the checkpoint has no tensor '" + s.name()
                        + "' for the critic's decoder");
            }
            backend.upload(model.parameters().get(s.name()), weights.floats(s.name(), s.shape()));
        }
        return model;
    }

    /**
     * The trained critic of a rank at {@code version}, with its optimizer; loaded when the store
     * lacks it: version 0 from {@code models.critic} (a fresh value head where it has none), a
     * trained version from a checkpoint's critic folder (a score model) with its optimizer state.
     */
    static ResidentModel trained(RankContext context, String role, ModelSource source, long version, String layout,
                                 int rank, OptimizerConfig optimizer, long headSeed) {
        return Replicas.trained(role, source, version, layout, rank, optimizer,
                dir -> load(context.backend(), dir, headSeed));
    }

    /**
     * This rank's copy of a critic the run does not train ({@code trainable: false}): no optimizer,
     * version 0, whole or sharded as the call's placement says, bound to the call. Its values are
     * those of {@code models.critic} as it is (a value model's own head).
     */
    static ResidentModel frozen(RankContext context, String role, ModelSource source, long headSeed) {
        ModelStore.Key key = new ModelStore.Key(role, 0, context.layoutKey(), context.rank());
        ResidentModel copy = ModelStore.get().getOrLoad(key, () -> {
            Replicas.checkReloadable(role, source, 0);
            return ModelShards.fromWhole(load(context.backend(), source.localPath(), headSeed), context.placement(),
                    context.rank(), 0, null, source);
        });
        copy.bind(context);
        return copy;
    }

    /**
     * This rank's copy of the critic at {@code version} for its call, with its optimizer: a whole
     * replica on a data-parallel placement, else its tensor / pipeline shard, cut from the critic
     * built whole (its value head may be a fresh one that no checkpoint holds), bound to the call.
     */
    static ResidentModel trained(RankContext context, String role, ModelSource source, long version,
                                 OptimizerConfig optimizer, long headSeed) {
        if (!Replicas.sharded(context)) {
            ResidentModel copy = trained(context, role, source, version, context.layoutKey(), context.rank(), optimizer, headSeed);
            copy.bind(context);
            return copy;
        }
        ModelStore.Key key = new ModelStore.Key(role, version, context.layoutKey(), context.rank());
        ResidentModel copy = ModelStore.get().getOrLoad(key, () -> {
            Replicas.checkReloadable(role, source, version);
            return ModelShards.fromWhole(load(context.backend(), source.localPath(), headSeed), context.placement(),
                    context.rank(), version, optimizer, source);
        });
        copy.bind(context);
        return copy;
    }
}
