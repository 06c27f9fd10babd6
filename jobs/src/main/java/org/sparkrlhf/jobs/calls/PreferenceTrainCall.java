package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.jobs.algorithms.GroupWeights;
import org.sparkrlhf.jobs.algorithms.PreferenceLosses;
import org.sparkrlhf.jobs.algorithms.SequenceLogprobs;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The actor_train call of DPO, IPO and their group-robust variants GR-DPO and GR-IPO, on its
 * placement (data-parallel replicas, or tensor / pipeline shards of each replica): one AdamW step
 * on the preference loss ({@link PreferenceLosses}) of the rank's pairs over the whole batch's pair
 * count, so that the gradients summed over the data-parallel ranks are the batch's; the summed
 * response log-probs' gradient flows through the model's per-token backward
 * ({@link SequenceLogprobs#tokenGradients}). The pairs go through the model in the placement's
 * micro-batches, whole pairs each.
 * <p>
 * The robust variants take a step in the order of Ramesh et al. 2024 (see {@link GroupWeights}):
 * a forward-only pass for each pair's loss at the current policy; the per-group sums of those
 * losses and the per-group pair counts summed over the data-parallel group (so every rank sees the
 * whole batch's); the mirror-ascent update of the group weights, the same on every rank; then
 * forward and backward with each pair weighted by its group's weight. No gradient flows through the
 * weights.
 */
public final class PreferenceTrainCall implements RankFunction<PreferenceTrainCall.Slice, PreferenceTrainCall.Result> {
    /**
     * The group-robust part of a slice: the run's group names and their pair counts in the training
     * set (N_g), the weights' settings, the weights before this step, and the group index of each of
     * the rank's pairs.
     */
    public record Robust(List<String> groups, long[] groupSizes, double stepSize, double chi,
                         GroupWeights.Scaling scaling, GroupWeights.State weights, int[] pairGroups)
            implements Serializable {
        GroupWeights restore() {
            GroupWeights w = new GroupWeights(groups, groupSizes, stepSize, chi, scaling);
            w.restore(weights);
            return w;
        }
    }

    /**
     * One data-parallel rank's input: its pairs as rows (2i chosen, 2i + 1 rejected, same prompt),
     * the reference's log-prob of each response token of each row (ref_inf's output for these rows),
     * the loss and its beta (IPO's tau), {@code robust} for GR-DPO / GR-IPO (null for DPO, IPO), and
     * the whole batch's pair count over all ranks (the loss's denominator).
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int[][] responses, float[][] refLogprobs, PreferenceLosses.Kind loss,
                        double beta, Robust robust, int padId, int batchPairs) implements Serializable {
    }

    /**
     * The step's loss over the whole batch (summed over the data-parallel ranks, the same on each; for
     * the robust variants the weighted objective), the gradient norm and the new version; over this
     * rank's pairs at the policy before the step: their count, the fraction with a positive implicit
     * reward margin, the mean margin, and per pair the unweighted loss and the margin beta * h. For
     * the robust variants (else null): per group the sum of the unweighted pair losses and the pair
     * count over the whole batch (the same on every rank), and the group weights after this step's
     * update (the state the next step's slice carries).
     */
    public record Result(double loss, float gradNorm, long version, int pairs, float accuracy, float meanMargin,
                         float[] pairLosses, float[] margins, double[] groupLossSums, long[] groupPairs,
                         GroupWeights.State weights)
            implements Serializable, TrainResult, PairFigures {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        int pairs = PreferencePairs.count(slice.prompts(), slice.responses());
        if (slice.refLogprobs().length != 2 * pairs) {
            throw new IllegalArgumentException(slice.refLogprobs().length + " rows of reference log-probs for "
                    + 2 * pairs + " rows");
        }
        if (slice.robust() != null && slice.robust().pairGroups().length != pairs) {
            throw new IllegalArgumentException(slice.robust().pairGroups().length + " group indices for " + pairs + " pairs");
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int[] starts = PreferencePairs.microBatchStarts(context, pairs);
        List<ResponseBatch> batches = new ArrayList<>();
        float[] refSums = new float[2 * pairs];
        for (int j = 0; pairs > 0 && j + 1 < starts.length; j++) {
            ResponseBatch batch = PreferencePairs.batch(slice.prompts(), slice.responses(), starts[j], starts[j + 1],
                    slice.padId());
            batches.add(batch);
            float[] ref = PreferencePairs.sums(batch, batch.spread(
                    Arrays.copyOfRange(slice.refLogprobs(), 2 * starts[j], 2 * starts[j + 1])));
            System.arraycopy(ref, 0, refSums, 2 * starts[j], ref.length);
        }
        float[] refChosen = PreferencePairs.chosen(refSums);
        float[] refRejected = PreferencePairs.rejected(refSums);

        GroupWeights groups = null;
        float[] pairWeights = null;
        double[] groupSums = null;
        long[] groupPairs = null;
        if (slice.robust() != null) {
            groups = slice.robust().restore();
            int k = groups.groups().size();
            float[] buffer = new float[2 * k];
            if (pairs > 0) {
                float[] sums = policySums(replica, batches);
                PreferenceLosses.Result before = PreferenceLosses.compute(slice.loss(), PreferencePairs.chosen(sums),
                        PreferencePairs.rejected(sums), refChosen, refRejected, slice.beta(), null, slice.batchPairs());
                for (int i = 0; i < pairs; i++) {
                    int g = slice.robust().pairGroups()[i];
                    buffer[g] += before.pairLosses()[i];
                    buffer[k + g] += 1;
                }
            }
            context.dataGroup().allReduceSum(buffer);
            groupSums = new double[k];
            groupPairs = new long[k];
            for (int g = 0; g < k; g++) {
                groupSums[g] = buffer[g];
                groupPairs[g] = Math.round(buffer[k + g]);
            }
            groups.update(groups.groupLosses(groupSums, groupPairs));
            pairWeights = groups.pairWeights(slice.robust().pairGroups(), groupPairs);
        }

        float[] pairLosses = new float[pairs];
        float[] margins = new float[pairs];
        float[] weights = pairWeights;
        TrainStep.Result step = TrainStep.step(replica, context.dataGroup(), model -> pairs == 0 ? 0.0
                : loss(model, slice, batches, starts, refChosen, refRejected, weights, pairLosses, margins));
        Replicas.advanced(slice.role(), slice.version(), context.layoutKey(), context.rank(), replica);
        float[] figures = PairFigures.ofMargins(margins);
        return new Result(step.loss(), step.step().gradNorm(), replica.version(), pairs, figures[0], figures[1],
                pairLosses, margins, groupSums, groupPairs, groups == null ? null : groups.state());
    }

    /** Each row's summed response log-prob under the current policy, forward only, in the micro-batches (pipelined on a shard). */
    private static float[] policySums(ResidentModel model, List<ResponseBatch> batches) {
        float[][] parts = new float[batches.size()][];
        int rows = 0;
        List<TokenStats> stats = model.forward(ResponseBatch.inputs(batches));
        for (int j = 0; j < parts.length; j++) {
            parts[j] = PreferencePairs.sums(batches.get(j), stats.get(j).logprobs());
            rows += parts[j].length;
        }
        float[] out = new float[rows];
        int k = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, k, p.length);
            k += p.length;
        }
        return out;
    }

    /**
     * Forward and backward over the micro-batches: the (weighted) preference loss of each over the
     * batch's pair count, back through the per-token log-probs; fills the pairs' unweighted losses
     * and margins; returns the rank's part of the loss.
     */
    private static double loss(ResidentModel model, Slice slice, List<ResponseBatch> batches, int[] starts,
                               float[] refChosen, float[] refRejected, float[] weights, float[] pairLosses,
                               float[] margins) {
        List<Batch> inputs = new ArrayList<>(batches.size());
        for (ResponseBatch b : batches) {
            inputs.add(b.batch());
        }
        double[] sum = new double[1];
        model.forwardBackward(inputs, (j, stats) -> {
            int a = starts[j];
            int b = starts[j + 1];
            ResponseBatch batch = batches.get(j);
            float[] sums = PreferencePairs.sums(batch, stats.logprobs());
            PreferenceLosses.Result r = PreferenceLosses.compute(slice.loss(), PreferencePairs.chosen(sums),
                    PreferencePairs.rejected(sums), Arrays.copyOfRange(refChosen, a, b),
                    Arrays.copyOfRange(refRejected, a, b), slice.beta(),
                    weights == null ? null : Arrays.copyOfRange(weights, a, b), slice.batchPairs());
            System.arraycopy(r.pairLosses(), 0, pairLosses, a, b - a);
            System.arraycopy(r.margins(), 0, margins, a, b - a);
            sum[0] += r.loss();
            return SequenceLogprobs.tokenGradients(PreferencePairs.rows(r.dChosen(), r.dRejected()),
                    batch.responseMask());
        });
        return sum[0];
    }
}
