package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.S3dExample;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.S3dTrainer;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.config.RunConfig.SpeculativeConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.planner.spec.Speculation;

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The s3d_train call's executor function: keeps the actor's S3D draft in step with the actor. On the
 * actor's current weights (frozen here), {@code steps} {@link S3dTrainer} steps on the mask
 * embeddings, each on up to {@link Speculation#EXAMPLES_PER_STEP} examples at random anchors of this
 * rank's sequences (prompt + response) of the iteration, the gradient averaged over the
 * data-parallel ranks, so that every rank ends with the same draft. The optimizer continues from the
 * moments the driver keeps between calls ({@code moments}, null before the first training).
 */
public final class S3dTrainCall implements RankFunction<S3dTrainCall.Slice, S3dTrainCall.Result> {

    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        SpeculativeConfig speculative, int steps, float[] maskEmbeddings, S3dTrainer.Moments moments,
                        int[][] texts, long seed) implements Serializable {
    }

    /** The trained mask embeddings and optimizer state, and this rank's S3D loss of the first and the last step (before each step's update; NaN without examples). */
    public record Result(float[] maskEmbeddings, S3dTrainer.Moments moments, float firstLoss, float lastLoss, int steps)
            implements Serializable {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        if (replica.isSharded()) {
            throw new IllegalArgumentException("generation.speculative: the S3D draft trains on a whole model per rank "
                    + "(a data-parallel layout), not on a tensor/pipeline shard; place s3d_train with tp = pp = 1");
        }
        SpeculativeConfig c = slice.speculative();
        S3dConfig s3d = new S3dConfig(c.skipFrom(), c.skipTo(), c.draftTokens());
        LlamaModel model = replica.model();
        List<int[]> usable = Arrays.stream(slice.texts()).filter(t -> t.length > c.draftTokens()).toList();
        try (S3dDraft draft = slice.maskEmbeddings() == null ? S3dDraft.initial(model, s3d, GenerateCall.DRAFT_SEED)
                : S3dDraft.of(model, s3d, slice.maskEmbeddings());
             S3dTrainer trainer = new S3dTrainer(model, draft, AdamW.Hyper.defaults((float) c.trainLr()), slice.moments())) {
            SplittableRandom rng = new SplittableRandom(slice.seed());
            int n = Math.min(Speculation.EXAMPLES_PER_STEP, usable.size());
            float first = Float.NaN, last = Float.NaN;
            for (int s = 0; s < slice.steps(); s++) {
                // every rank steps (the gradient's all-reduce), with or without examples of its own
                List<S3dExample> examples = n == 0 ? List.of() : S3dExample.sample(usable, c.draftTokens(), n, rng);
                last = trainer.step(examples, context.dataGroup());
                if (s == 0) {
                    first = last;
                }
            }
            return new Result(draft.values(), trainer.moments(), first, last, slice.steps());
        }
    }
}
