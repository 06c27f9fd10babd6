package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;

/**
 * The critic_inf call of PPO: each rank runs its prompt + response rows through the critic replica
 * it trains (so the values are the current critic's, the "old" values of the clipped value loss)
 * and returns each response token's value.
 */
public final class ValuesCall implements RankFunction<ValuesCall.Slice, float[][]> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        long headSeed, int[][] prompts, int[][] responses, int padId) implements Serializable {
    }

    @Override
    public float[][] apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.worldSize()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run on " + context.worldSize() + " ranks");
        }
        ResidentModel critic = Critics.trained(slice.role(), slice.source(), slice.version(),
                "dp" + slice.dataParallel() + ".tp1.pp1", context.rank(), slice.optimizer(), slice.headSeed());
        int rows = slice.prompts().length;
        if (rows == 0) {
            return new float[0][];
        }
        ResponseBatch batch = ResponseBatch.of(slice.prompts(), slice.responses(), slice.padId());
        float[] values = critic.model().values(batch.batch());
        critic.model().releaseActivations();
        float[][] out = new float[rows][];
        for (int b = 0; b < rows; b++) {
            out[b] = ValuePositions.response(batch, values, b);
        }
        return out;
    }
}
