package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The reward_inf call with a reward model (an HF ...ForSequenceClassification checkpoint with one
 * label, frozen): each rank scores its prompt + response rows in the placement's micro-batches
 * ({@link MicroBatches}), each row's reward being the score at its last non-pad token, as transformers computes it. Rows are padded with the reward model's
 * own pad token; a reward model without one scores its rows one at a time (its last token is then
 * the row's last token, as transformers does for a batch of one).
 */
public final class RewardModelCall implements RankFunction<RewardModelCall.Slice, float[]> {
    public record Slice(String role, ModelSource source, int dataParallel, int[][] prompts, int[][] responses)
            implements Serializable {
    }

    /**
     * On the driver: reward_inf of {@code role} (from {@code source}) on {@code at}, the reward
     * model's unclipped score of each prompt + response row, in row order. A data-parallel rank
     * takes whole groups of {@code group} consecutive rows (GRPO's samples of one prompt; 1 for
     * single rows).
     */
    public static float[] score(BarrierCallRunner runner, String role, Placement at, ModelSource source,
                                int[][] prompts, int[][] responses, int group, String description) {
        int dp = at.dp();
        int groups = prompts.length / group;
        List<Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = r * groups / dp * group;
            int to = (r + 1) * groups / dp * group;
            slices.add(new Slice(role, source, dp, Arrays.copyOfRange(prompts, from, to),
                    Arrays.copyOfRange(responses, from, to)));
        }
        float[] scores = new float[prompts.length];
        int k = 0;
        for (float[] rank : at.perDataRank(runner.run(description, at, at.perRank(slices), new RewardModelCall()))) {
            for (float v : rank) {
                scores[k++] = v;
            }
        }
        if (k != prompts.length) {
            throw new IllegalStateException(description + ": " + k + " scores came back for " + prompts.length + " rows");
        }
        return scores;
    }

    @Override
    public float[] apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        // the model first, also on a rank with no rows: the driver counts on every rank holding it after the call
        ResidentModel reward = Replicas.frozen(context, slice.role(), slice.source());
        return scores(reward, slice.prompts(), slice.responses(), MicroBatches.starts(context, slice.prompts().length));
    }

    /** Each prompt + response row's score, forward only, all rows as one micro-batch (see {@link #scoreBatches}). */
    static float[] scores(ResidentModel reward, int[][] prompts, int[][] responses) {
        return scores(reward, prompts, responses, new int[]{0, prompts.length});
    }

    /**
     * Each prompt + response row's score, forward only, rows [starts[j], starts[j + 1]) being
     * micro-batch j (each laid out by {@link #scoreBatches}); a pipeline's stages overlap on them.
     */
    static float[] scores(ResidentModel reward, int[][] prompts, int[][] responses, int[] starts) {
        List<Batch> batches = new ArrayList<>();
        for (int j = 0; j + 1 < starts.length; j++) {
            batches.addAll(scoreBatches(reward, Arrays.copyOfRange(prompts, starts[j], starts[j + 1]),
                    Arrays.copyOfRange(responses, starts[j], starts[j + 1])));
        }
        float[] out = new float[prompts.length];
        int k = 0;
        for (float[] part : reward.scores(batches)) {
            System.arraycopy(part, 0, out, k, part.length);
            k += part.length;
        }
        return out;
    }

    /**
     * The rows as the reward model scores them: one batch padded with the model's own pad token, or,
     * for a model without one, one batch per row (its last token is then the row's last token, as
     * transformers does for a batch of one); none for no rows.
     */
    static List<Batch> scoreBatches(ResidentModel reward, int[][] prompts, int[][] responses) {
        int rows = prompts.length;
        if (rows == 0) {
            return List.of();
        }
        int pad = reward.config().padTokenId();
        if (pad >= 0) {
            return List.of(ResponseBatch.of(prompts, responses, pad).batch());
        }
        List<Batch> out = new ArrayList<>(rows);
        for (int b = 0; b < rows; b++) {
            out.add(ResponseBatch.of(new int[][]{prompts[b]}, new int[][]{responses[b]}, 0).batch());
        }
        return out;
    }
}
