package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ModelShards;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.nio.file.Path;
import java.util.function.Function;

/**
 * Finds a rank's model replica in its executor's {@link ModelStore}, loading it from its
 * {@link ModelSource} when the store does not hold it (a new executor, the first call, or a resumed
 * run): version 0 is the initial model with a fresh optimizer; a trained version is a checkpoint's
 * model folder, whose optimizer state ({@link OptimizerState#FILE}) is restored with it.
 */
final class Replicas {
    private Replicas() {
    }

    /** The trained copy of {@code role} at {@code version} (with its optimizer). */
    static ResidentModel trained(RankContext context, String role, ModelSource source, long version, String layout,
                                 int rank, OptimizerConfig optimizer) {
        return trained(role, source, version, layout, rank, optimizer, dir -> LlamaModel.load(context.backend(), dir));
    }

    /**
     * The trained copy of {@code role} at {@code version}, built from its folder by {@code loader}
     * (the critic's value-head model, {@link Critics}), with its optimizer.
     */
    static ResidentModel trained(String role, ModelSource source, long version, String layout, int rank,
                                 OptimizerConfig optimizer, Function<Path, LlamaModel> loader) {
        ModelStore.Key key = new ModelStore.Key(role, version, layout, rank);
        return ModelStore.get().getOrLoad(key, () -> {
            LlamaModel model = load(role, source, version, loader);
            AdamW adamw = AdamW.forModel(model, SftTrainCall.hyper(optimizer));
            if (version != 0) {
                try {
                    OptimizerState.load(adamw, source.localPath().resolve(OptimizerState.FILE));
                } catch (RuntimeException e) {
                    adamw.close();
                    model.close();
                    throw e;
                }
            }
            return new ResidentModel(model, adamw, version);
        });
    }

    /** A frozen copy (the reference model): no optimizer, always version 0. */
    static ResidentModel frozen(RankContext context, String role, ModelSource source, String layout, int rank) {
        ModelStore.Key key = new ModelStore.Key(role, 0, layout, rank);
        return ModelStore.get().getOrLoad(key, () -> new ResidentModel(load(role, source, 0,
                dir -> LlamaModel.load(context.backend(), dir)), null, 0));
    }

    /**
     * This rank's trained copy of {@code role} at {@code version} for its call: a whole replica on a
     * data-parallel placement, else its tensor / pipeline shard (loaded as slices when absent), bound
     * to the call's groups.
     */
    static ResidentModel trained(RankContext context, String role, ModelSource source, long version,
                                 OptimizerConfig optimizer) {
        ResidentModel copy;
        if (!sharded(context)) {
            copy = trained(context, role, source, version, context.layoutKey(), context.rank(), optimizer);
        } else {
            ModelStore.Key key = new ModelStore.Key(role, version, context.layoutKey(), context.rank());
            copy = ModelStore.get().getOrLoad(key, () -> {
                checkReloadable(role, source, version);
                return ModelShards.load(context.backend(), source, context.placement(), context.rank(), version, optimizer);
            });
        }
        copy.bind(context);
        return copy;
    }

    /** This rank's frozen copy (no optimizer, version 0) for its call, whole or sharded, bound to the call. */
    static ResidentModel frozen(RankContext context, String role, ModelSource source) {
        ResidentModel copy;
        if (!sharded(context)) {
            copy = frozen(context, role, source, context.layoutKey(), context.rank());
        } else {
            ModelStore.Key key = new ModelStore.Key(role, 0, context.layoutKey(), context.rank());
            copy = ModelStore.get().getOrLoad(key, () -> {
                checkReloadable(role, source, 0);
                return ModelShards.load(context.backend(), source, context.placement(), context.rank(), 0, null);
            });
        }
        copy.bind(context);
        return copy;
    }

    static boolean sharded(RankContext context) {
        return context.placement() != null && (context.placement().tp() != 1 || context.placement().pp() != 1);
    }

    /**
     * A copy missing from the store loads from its source only at the version the source holds (a
     * trained version then continues the optimizer state saved beside it, see ModelShards).
     */
    static void checkReloadable(String role, ModelSource source, long version) {
        if (source.version() != version) {
            throw new IllegalStateException(role + " version " + version + " is not in this executor and "
                    + "the newest checkpoint holds version " + source.version() + " (" + source.path() + ")");
        }
    }

    /** Files the stepped replica under its new version, in place of its old key. */
    static void advanced(String role, long oldVersion, String layout, int rank, ResidentModel replica) {
        ModelStore store = ModelStore.get();
        store.remove(new ModelStore.Key(role, oldVersion, layout, rank));
        store.put(new ModelStore.Key(role, replica.version(), layout, rank), replica);
    }

    private static LlamaModel load(String role, ModelSource source, long version, Function<Path, LlamaModel> loader) {
        if (source.version() != version) {
            throw new IllegalStateException(role + " version " + version + " is not in this executor and "
                    + "the newest checkpoint holds version " + source.version() + " (" + source.path() + ")");
        }
        return loader.apply(source.localPath());
    }
}
