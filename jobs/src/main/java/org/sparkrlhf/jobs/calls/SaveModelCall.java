package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.train.OptimizerState;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.ShardSet;
import org.sparkrlhf.jobs.executor.ShardTensors;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.DeviceSlot;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Writes a resident model as an HF checkpoint folder (config.json + safetensors, float32) that
 * transformers loads and, with {@code withOptimizer}, its AdamW state beside it
 * ({@link OptimizerState#FILE}): a trained whole replica's own optimizer, or, for a whole copy of a
 * model trained under tensor / pipeline parallelism, the moments gathered beside it
 * (ModelResidency.wholeCopy). Data-parallel replicas are identical, so rank 0 writes and the
 * others only check that they hold the same version. The folder may be on any Hadoop file system
 * ({@link HadoopFiles}): a remote one is written on the executor's disk first and copied up.
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
            boolean local = HadoopFiles.isLocal(request.dir());
            Path dir;
            try {
                dir = local ? HadoopFiles.localPath(request.dir()) : Files.createTempDirectory("spark-rlhf-save");
            } catch (IOException e) {
                throw new UncheckedIOException("cannot stage " + request.dir() + " on local disk: " + e.getMessage(), e);
            }
            try {
                replica.model().save(dir, StDType.F32, 2L << 30);
                if (request.withOptimizer()) {
                    Path file = dir.resolve(OptimizerState.FILE);
                    if (replica.hasOptimizer()) {
                        OptimizerState.save(replica.optimizer(), file);
                    } else {
                        saveGathered(request, replica, file);
                    }
                }
                if (!local) {
                    HadoopFiles.uploadFolder(dir, request.dir());
                }
            } finally {
                if (!local) {
                    deleteStaging(dir);
                }
            }
            // moments gathered for this save are not kept (nor left behind when only the weights were asked for)
            for (ShardTensors.View view : List.of(ShardTensors.View.EXP_AVG, ShardTensors.View.EXP_AVG_SQ)) {
                ModelStore.get().remove(gatheredKey(request, view));
            }
        }
        return true;
    }

    private static void deleteStaging(Path dir) {
        try (var walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove the staged copy " + dir + ": " + e.getMessage(), e);
        }
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
            // downloaded as the writer reaches them: one moment on the host at a time
            moments.add(new OptimizerState.Moments(s.name(), s.shape(), () -> first.tensor(s.name()),
                    () -> second.tensor(s.name())));
        }
        OptimizerState.write(moments, steps.steps(), steps.hyper(), file);
    }

    /**
     * On the driver: writes {@code role} at {@code version}, resident on {@code mesh} in
     * {@code layout}, to folder {@code dir} on any Hadoop file system (weights, optimizer state
     * when asked, and the tokenizer files of local folder {@code sourceDir}).
     */
    public static void save(BarrierCallRunner runner, List<DeviceSlot> mesh, String role, long version, String layout,
                            Path sourceDir, String dir, boolean withOptimizer) {
        HadoopFiles.mkdirs(dir);
        List<Request> requests = new ArrayList<>();
        for (int r = 0; r < mesh.size(); r++) {
            requests.add(new Request(role, version, layout, dir, withOptimizer));
        }
        runner.run(role + "_save", "save " + role + " version " + version, mesh, requests, new SaveModelCall());
        for (String file : TOKENIZER_FILES) {
            if (Files.exists(sourceDir.resolve(file))) {
                HadoopFiles.upload(sourceDir.resolve(file), HadoopFiles.resolve(dir, file));
            }
        }
    }
}
