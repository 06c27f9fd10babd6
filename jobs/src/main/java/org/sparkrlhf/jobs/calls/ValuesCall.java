package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;

/**
 * The critic_inf call of PPO: each rank runs its prompt + response rows through the critic replica
 * it trains (so the values are the current critic's, the "old" values of the clipped value loss)
 * and returns each response token's value. On a tensor / pipeline placement every rank of a
 * replica runs the replica's rows (the values come from its last stage).
 */
public final class ValuesCall implements RankFunction<ValuesCall.Slice, float[][]> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        long headSeed, int[][] prompts, int[][] responses, int padId) implements Serializable {
    }

    @Override
    public float[][] apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        // the model first, also on a rank with no rows: the driver counts on every rank holding it after the call
        ResidentModel critic = Critics.trained(context, slice.role(), slice.source(), slice.version(),
                slice.optimizer(), slice.headSeed());
        int rows = slice.prompts().length;
        if (rows == 0) {
            return new float[0][];
        }
        ResponseBatch batch = ResponseBatch.of(slice.prompts(), slice.responses(), slice.padId());
        float[] values = critic.values(batch.batch());
        critic.releaseActivations();
        float[][] out = new float[rows][];
        for (int b = 0; b < rows; b++) {
            out[b] = ValuePositions.response(batch, values, b);
        }
        return out;
    }
}
