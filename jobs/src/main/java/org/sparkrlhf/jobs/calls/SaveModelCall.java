package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.ShardSet;
import org.sparkrlhf.jobs.executor.ShardTensors;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.DeviceSlot;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes a resident model as an HF checkpoint folder (config.json + safetensors, float32) that
 * transformers loads and, with {@code withOptimizer}, its AdamW state beside it
 * ({@link OptimizerState#FILE}): a trained whole replica's own optimizer, or, for a whole copy of a
 * model trained under tensor / pipeline parallelism, the moments gathered beside it
 * (ModelResidency.wholeCopy). Data-parallel replicas are identical, so rank 0 writes and the
 * others only check that they hold the same version. The folder must be on a file system the
 * executor sees (local in embedded runs, a shared mount on clusters).
 */
public final class SaveModelCall implements RankFunction<SaveModelCall.Request, Boolean> {
    public record Request(String role, long version, String layout, String dir, boolean withOptimizer)
            implements Serializable {
        /** The weights alone (a final model). */
        public Request(String role, long version, String layout, String dir) {
            this(role, version, layout, dir, false);
        }
    }

    /** Files of the model's source folder that a saved folder carries, so that it loads as a whole model. */
    static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json", "generation_config.json");

    @Override
    public Boolean apply(RankContext context, Request request) {
        ModelStore.Key key = new ModelStore.Key(request.role(), request.version(), request.layout(), context.rank());
        ResidentModel replica = ModelStore.get().find(key);
        if (replica == null) {
            throw new IllegalStateException("cannot save " + key + ": executor " + context.executorId()
                    + " does not hold it (lost executor?)");
        }
        if (context.rank() == 0) {
            Path dir = Path.of(request.dir());
            replica.model().save(dir, StDType.F32, 2L << 30);
            if (request.withOptimizer()) {
                Path file = dir.resolve(OptimizerState.FILE);
                if (replica.hasOptimizer()) {
                    OptimizerState.save(replica.optimizer(), file);
                } else {
                    saveGathered(request, replica, file);
                }
            }
            // moments gathered for this save are not kept (nor left behind when only the weights were asked for)
            for (ShardTensors.View view : List.of(ShardTensors.View.EXP_AVG, ShardTensors.View.EXP_AVG_SQ)) {
                ModelStore.get().remove(gatheredKey(request, view));
            }
        }
        return true;
    }

    private static ModelStore.Key gatheredKey(Request request, ShardTensors.View view) {
        return new ModelStore.Key(request.role(), request.version(), view.layoutKey(request.layout()), 0);
    }

    /**
     * Writes the optimizer state of a copy trained under tensor / pipeline parallelism: its AdamW
     * moments gathered beside this whole copy of its weights (ModelResidency.wholeCopy), in the
     * whole model's parameter order, with the shards' step count: the file a data-parallel replica's
     * optimizer of the same state writes.
     */
    private static void saveGathered(Request request, ResidentModel replica, Path file) {
        ModelStore store = ModelStore.get();
        ModelStore.Key firstKey = gatheredKey(request, ShardTensors.View.EXP_AVG);
        ModelStore.Key secondKey = gatheredKey(request, ShardTensors.View.EXP_AVG_SQ);
        ShardSet first = store.find(firstKey);
        ShardSet second = store.find(secondKey);
        if (first == null || second == null) {
            throw new IllegalStateException("cannot save the optimizer state of " + request.role() + " v"
                    + request.version() + " from " + request.layout() + ": this copy has no optimizer and its gathered "
                    + "moments (" + (first == null ? firstKey : secondKey) + ") are not in this executor (gather them "
                    + "with ModelResidency.wholeCopy)");
        }
        ShardSet.OptimizerSteps steps = first.optimizer();
        if (steps == null || !steps.equals(second.optimizer())) {
            throw new IllegalStateException(request.role() + " v" + request.version() + ": the gathered moments are of "
                    + "different optimizer steps (" + steps + ", " + second.optimizer() + ")");
        }
        List<OptimizerState.Moments> moments = new ArrayList<>();
        for (LlamaWeights.Spec s : replica.model().parameters().specs()) {
            float[] m = first.tensor(s.name());
            float[] v = second.tensor(s.name());
            moments.add(new OptimizerState.Moments(s.name(), s.shape(), () -> m, () -> v));
        }
        OptimizerState.write(moments, steps.steps(), steps.hyper(), file);
    }

    /**
     * On the driver: writes {@code role} at {@code version}, resident on {@code mesh} in
     * {@code layout}, to {@code dir} (weights, optimizer state when asked, and the tokenizer files
     * of {@code sourceDir}).
     */
    public static void save(BarrierCallRunner runner, List<DeviceSlot> mesh, String role, long version, String layout,
                            Path sourceDir, Path dir, boolean withOptimizer) throws IOException {
        Files.createDirectories(dir);
        List<Request> requests = new ArrayList<>();
        for (int r = 0; r < mesh.size(); r++) {
            requests.add(new Request(role, version, layout, dir.toString(), withOptimizer));
        }
        runner.run(role + "_save", "save " + role + " version " + version, mesh, requests, new SaveModelCall());
        for (String file : TOKENIZER_FILES) {
            if (Files.exists(sourceDir.resolve(file))) {
                Files.copy(sourceDir.resolve(file), dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }
}
