package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.nio.file.Path;

/**
 * Writes a resident model as an HF checkpoint folder (config.json + safetensors, float32) that
 * transformers loads. Data-parallel replicas are identical, so rank 0 writes and the others only
 * check that they hold the same version. The folder must be on a file system the executor sees
 * (local in embedded runs, a shared mount on clusters).
 */
public final class SaveModelCall implements RankFunction<SaveModelCall.Request, Boolean> {
    public record Request(String role, long version, String layout, String dir) implements Serializable {
    }

    @Override
    public Boolean apply(RankContext context, Request request) {
        ModelStore.Key key = new ModelStore.Key(request.role(), request.version(), request.layout(), context.rank());
        ResidentModel replica = ModelStore.get().find(key);
        if (replica == null) {
            throw new IllegalStateException("cannot save " + key + ": executor " + context.executorId()
                    + " does not hold it (lost executor?)");
        }
        if (context.rank() == 0) {
            replica.model().save(Path.of(request.dir()), StDType.F32, 2L << 30);
        }
        return true;
    }
}
