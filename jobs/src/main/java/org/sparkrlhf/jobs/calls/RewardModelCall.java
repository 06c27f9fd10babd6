package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;

/**
 * The reward_inf call with a reward model (an HF ...ForSequenceClassification checkpoint with one
 * label, frozen): each rank scores its prompt + response rows, each row's reward being the score
 * at its last non-pad token, as transformers computes it. Rows are padded with the reward model's
 * own pad token; a reward model without one scores its rows one at a time (its last token is then
 * the row's last token, as transformers does for a batch of one).
 */
public final class RewardModelCall implements RankFunction<RewardModelCall.Slice, float[]> {
    public record Slice(String role, ModelSource source, int dataParallel, int[][] prompts, int[][] responses)
            implements Serializable {
    }

    @Override
    public float[] apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        // the model first, also on a rank with no rows: the driver counts on every rank holding it after the call
        ResidentModel reward = Replicas.frozen(context, slice.role(), slice.source());
        int rows = slice.prompts().length;
        if (rows == 0) {
            return new float[0];
        }
        int pad = reward.config().padTokenId();
        if (pad >= 0) {
            float[] scores = reward.scores(ResponseBatch.of(slice.prompts(), slice.responses(), pad).batch());
            reward.releaseActivations();
            return scores;
        }
        float[] scores = new float[rows];
        for (int b = 0; b < rows; b++) {
            scores[b] = reward.scores(ResponseBatch.of(new int[][]{slice.prompts()[b]},
                    new int[][]{slice.responses()[b]}, 0).batch())[0];
            reward.releaseActivations();
        }
        return scores;
    }
}
