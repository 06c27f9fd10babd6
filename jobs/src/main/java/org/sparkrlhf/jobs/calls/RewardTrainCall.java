package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.jobs.algorithms.BradleyTerry;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.jobs.executor.TrainStep;

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;

/**
 * The reward model's train call of RW on its placement (data-parallel replicas, or tensor /
 * pipeline shards of each replica): one AdamW step on the Bradley-Terry loss
 * ({@link BradleyTerry}) of the rank's pairs over the whole batch's pair count. The model is a
 * sequence-classification model loaded as the critic is ({@link Critics}: a reward-model checkpoint
 * as it is, a causal LM's decoder with a fresh score head), and each row's score is read where
 * {@link RewardModelCall} reads it, so a saved step (SaveModelCall, an HF
 * LlamaForSequenceClassification folder) scores in reward_inf as it scored here. Pairs go through
 * the model in the placement's micro-batches, whole pairs each; a model without a pad token scores
 * one row at a time, so there each pair's scores come from a forward-only pass first and every row is
 * then run again for its backward.
 */
public final class RewardTrainCall implements RankFunction<RewardTrainCall.Slice, RewardTrainCall.Result> {
    /**
     * One data-parallel rank's input: its pairs as rows (2i chosen, 2i + 1 rejected, same prompt),
     * the seed of a fresh score head (when the model starts from a causal LM), and the whole batch's
     * pair count over all ranks (the loss's denominator).
     */
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        long headSeed, int[][] prompts, int[][] responses, int batchPairs) implements Serializable {
    }

    /**
     * The step's loss over the whole batch (summed over the data-parallel ranks, the same on each),
     * the gradient norm and the new version; over this rank's pairs, scored before the step: their
     * count, the fraction scored the right way round and the mean margin s_c - s_r.
     */
    public record Result(double loss, float gradNorm, long version, int pairs, float accuracy, float meanMargin)
            implements Serializable, TrainResult, PairFigures {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        int pairs = PreferencePairs.count(slice.prompts(), slice.responses());
        ResidentModel replica = Critics.trained(context, slice.role(), slice.source(), slice.version(),
                slice.optimizer(), slice.headSeed());
        int[] starts = PreferencePairs.microBatchStarts(context, pairs);
        float[] margins = new float[pairs];
        TrainStep.Result step = TrainStep.step(replica, context.dataGroup(), model -> {
            double loss = 0;
            for (int j = 0; pairs > 0 && j + 1 < starts.length; j++) {
                loss += microBatch(model, slice, starts[j], starts[j + 1], margins);
            }
            return loss;
        });
        Replicas.advanced(slice.role(), slice.version(), context.layoutKey(), context.rank(), replica);
        float[] figures = PairFigures.ofMargins(margins);
        return new Result(step.loss(), step.step().gradNorm(), replica.version(), pairs, figures[0], figures[1]);
    }

    /**
     * The Bradley-Terry loss of pairs [a, b) over the batch's pair count, back through the score
     * head into the model's gradients; fills the pairs' margins and returns their part of the loss.
     */
    private static double microBatch(ResidentModel model, Slice slice, int a, int b, float[] margins) {
        int[][] prompts = Arrays.copyOfRange(slice.prompts(), 2 * a, 2 * b);
        int[][] responses = Arrays.copyOfRange(slice.responses(), 2 * a, 2 * b);
        List<Batch> batches = RewardModelCall.scoreBatches(model, prompts, responses);
        boolean together = batches.size() == 1;
        float[] scores = together ? model.scores(batches.get(0)) : RewardModelCall.scores(model, prompts, responses);
        BradleyTerry.Result loss = BradleyTerry.loss(PreferencePairs.chosen(scores), PreferencePairs.rejected(scores),
                slice.batchPairs());
        float[] dScores = PreferencePairs.rows(loss.dChosen(), loss.dRejected());
        if (together) {
            model.backwardScores(dScores);
        } else {
            for (int r = 0; r < batches.size(); r++) {
                model.scores(batches.get(r));
                model.backwardScores(new float[]{dScores[r]});
            }
        }
        for (int i = 0; i < b - a; i++) {
            margins[a + i] = scores[2 * i] - scores[2 * i + 1];
        }
        return loss.loss();
    }
}
