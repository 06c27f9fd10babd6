package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.List;

/**
 * A forward-only call on preference pairs (held-out evaluation): per pair, the chosen and the
 * rejected response's summed log-prob under a policy (DPO, IPO and their robust variants; the
 * reference's too, from the frozen ref model) or their scores under a reward model (RW), in the
 * placement's micro-batches of whole pairs (a pipeline's stages overlap on them). With the reference's sums the driver has each pair's
 * implicit reward margin and loss ({@code PreferenceLosses}), per group as it likes. Scores are
 * read as {@link RewardModelCall} reads them.
 */
public final class PreferenceEvalCall implements RankFunction<PreferenceEvalCall.Slice, PreferenceEvalCall.Result> {
    /** What the forward gives per row. */
    public enum Output {
        /** The summed log-prob of the row's response tokens (a causal LM). */
        LOGPROBS,
        /** The score at the row's last non-pad token (a sequence-classification model). */
        SCORES
    }

    /**
     * One data-parallel rank's pairs as rows (2i chosen, 2i + 1 rejected, same prompt). A role
     * trained in the run gives its {@code optimizer} (its copy at {@code version} is the trained one,
     * reloaded with its optimizer when absent, and for SCORES a fresh score head from
     * {@code headSeed} at version 0, as {@link RewardTrainCall}); a frozen role gives null (version 0).
     * {@code padId} pads LOGPROBS rows (SCORES rows use the model's own pad token).
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        long headSeed, Output output, int[][] prompts, int[][] responses, int padId)
            implements Serializable {
    }

    /** Per pair of the rank, in order: the chosen and the rejected row's summed log-prob or score. */
    public record Result(float[] chosen, float[] rejected) implements Serializable {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        int pairs = PreferencePairs.count(slice.prompts(), slice.responses());
        // the model first, also on a rank with no rows: the driver counts on every rank holding it after the call
        ResidentModel model = model(context, slice);
        int[] starts = PreferencePairs.microBatchStarts(context, pairs);
        int[] rowStarts = new int[starts.length];
        for (int j = 0; j < starts.length; j++) {
            rowStarts[j] = 2 * starts[j];
        }
        float[] perRow;
        if (slice.output() == Output.SCORES) {
            perRow = RewardModelCall.scores(model, slice.prompts(), slice.responses(), rowStarts);
        } else {
            perRow = new float[2 * pairs];
            List<ResponseBatch> batches = pairs == 0 ? List.of() : ResponseBatch.microBatches(slice.prompts(),
                    slice.responses(), slice.padId(), rowStarts);
            List<TokenStats> stats = model.forward(ResponseBatch.inputs(batches));
            for (int j = 0; j < stats.size(); j++) {
                float[] part = PreferencePairs.sums(batches.get(j), stats.get(j).logprobs());
                System.arraycopy(part, 0, perRow, rowStarts[j], part.length);
            }
        }
        return new Result(PreferencePairs.chosen(perRow), PreferencePairs.rejected(perRow));
    }

    private static ResidentModel model(RankContext context, Slice slice) {
        if (slice.optimizer() == null) {
            if (slice.version() != 0) {
                throw new IllegalArgumentException(slice.role() + ": a frozen model has version 0, not " + slice.version());
            }
            return Replicas.frozen(context, slice.role(), slice.source());
        }
        return slice.output() == Output.SCORES
                ? Critics.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer(), slice.headSeed())
                : Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
    }
}
