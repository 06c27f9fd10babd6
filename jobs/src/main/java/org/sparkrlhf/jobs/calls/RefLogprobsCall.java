package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;

/**
 * The ref_inf call: each rank scores its prompt + response rows with the frozen reference model
 * (the initial actor, loaded once per rank and never trained) and returns each response token's
 * logprob under it.
 */
public final class RefLogprobsCall implements RankFunction<RefLogprobsCall.Slice, float[][]> {
    public record Slice(String role, ModelSource source, int dataParallel, int[][] prompts, int[][] responses,
                        int padId) implements Serializable {
    }

    @Override
    public float[][] apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        // the model first, also on a rank with no rows: the driver counts on every rank holding it after the call
        ResidentModel ref = Replicas.frozen(context, slice.role(), slice.source());
        int rows = slice.prompts().length;
        if (rows == 0) {
            return new float[0][];
        }
        ResponseBatch batch = ResponseBatch.of(slice.prompts(), slice.responses(), slice.padId());
        TokenStats stats = ref.forward(batch.batch(), false);
        ref.releaseActivations();
        float[][] out = new float[rows][];
        for (int b = 0; b < rows; b++) {
            out[b] = batch.response(stats.logprobs(), b);
        }
        return out;
    }
}
