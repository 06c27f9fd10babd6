package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.List;

/**
 * The ref_inf call: each rank scores its prompt + response rows with the frozen reference model
 * (the initial actor, loaded once per rank and never trained) in the placement's micro-batches
 * ({@link MicroBatches}; a pipeline's stages overlap on them) and returns each response token's
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
        return logprobs(context, ref, slice.prompts(), slice.responses(), slice.padId());
    }

    /** Each row's response-token log-probs under {@code model}, forward only, in the call's micro-batches. */
    static float[][] logprobs(RankContext context, ResidentModel model, int[][] prompts, int[][] responses, int padId) {
        int rows = prompts.length;
        float[][] out = new float[rows][];
        if (rows == 0) {
            return out;
        }
        int[] starts = MicroBatches.starts(context, rows);
        List<ResponseBatch> batches = ResponseBatch.microBatches(prompts, responses, padId, starts);
        List<TokenStats> stats = model.forward(ResponseBatch.inputs(batches));
        for (int j = 0; j < batches.size(); j++) {
            for (int b = starts[j]; b < starts[j + 1]; b++) {
                out[b] = batches.get(j).response(stats.get(j).logprobs(), b - starts[j]);
            }
        }
        return out;
    }
}
