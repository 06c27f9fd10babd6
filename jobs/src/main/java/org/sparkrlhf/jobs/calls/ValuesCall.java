package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.List;

/**
 * The critic_inf call of PPO: each rank runs its prompt + response rows through the critic replica
 * it trains (so the values are the current critic's, the "old" values of the clipped value loss),
 * or through the frozen critic of a run that does not train it ({@code optimizer} null), in the
 * placement's micro-batches ({@link MicroBatches}), and returns each response token's value. On a
 * tensor / pipeline placement every rank of a replica runs the replica's rows (the values come from
 * its last stage).
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
        ResidentModel critic;
        if (slice.optimizer() == null) {
            if (slice.version() != 0) {
                throw new IllegalArgumentException(slice.role() + ": a frozen critic has version 0, not " + slice.version());
            }
            critic = Critics.frozen(context, slice.role(), slice.source(), slice.headSeed());
        } else {
            critic = Critics.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer(),
                    slice.headSeed());
        }
        int rows = slice.prompts().length;
        float[][] out = new float[rows][];
        if (rows == 0) {
            return out;
        }
        int[] starts = MicroBatches.starts(context, rows);
        List<ResponseBatch> batches = ResponseBatch.microBatches(slice.prompts(), slice.responses(), slice.padId(), starts);
        List<float[]> values = critic.values(ResponseBatch.inputs(batches));
        for (int j = 0; j < batches.size(); j++) {
            for (int b = starts[j]; b < starts[j + 1]; b++) {
                out[b] = ValuePositions.response(batches.get(j), values.get(j), b - starts[j]);
            }
        }
        return out;
    }
}
