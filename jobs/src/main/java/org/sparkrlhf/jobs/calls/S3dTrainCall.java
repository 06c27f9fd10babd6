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

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Keeps the actor's S3D draft in step with the actor: on the replica actor_train just updated, a
 * few {@link S3dTrainer} steps on the mask embeddings alone (the weights stay as they are), each on
 * examples at random anchors of this rank's sequences (prompt + response) of the iteration. A fresh
 * AdamW per call: its moments do not travel with the draft, which the driver holds between calls.
 */
public final class S3dTrainCall implements RankFunction<S3dTrainCall.Slice, S3dTrainCall.Result> {
    /** At most this many examples per step: the draft has only [k, hidden] parameters. */
    static final int EXAMPLES_PER_STEP = 32;

    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        SpeculativeConfig speculative, float[] maskEmbeddings, int[][] texts, long seed)
            implements Serializable {
    }

    /** The trained mask embeddings and the S3D loss of the first and the last step (before each step's update). */
    public record Result(float[] maskEmbeddings, float firstLoss, float lastLoss, int steps) implements Serializable {
    }

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        if (replica.isSharded()) {
            throw new IllegalArgumentException("generation.speculative: the S3D draft trains on a whole model per rank "
                    + "(a data-parallel layout), not on a tensor/pipeline shard; place actor_train with tp = pp = 1");
        }
        SpeculativeConfig c = slice.speculative();
        S3dConfig s3d = new S3dConfig(c.skipFrom(), c.skipTo(), c.draftTokens());
        LlamaModel model = replica.model();
        List<int[]> usable = Arrays.stream(slice.texts()).filter(t -> t.length > c.draftTokens()).toList();
        try (S3dDraft draft = slice.maskEmbeddings() == null ? S3dDraft.initial(model, s3d, GenerateCall.DRAFT_SEED)
                : S3dDraft.of(model, s3d, slice.maskEmbeddings())) {
            if (usable.isEmpty() || c.trainSteps() == 0) {
                return new Result(draft.values(), Float.NaN, Float.NaN, 0);
            }
            SplittableRandom rng = new SplittableRandom(slice.seed());
            int n = Math.min(EXAMPLES_PER_STEP, usable.size());
            float first = Float.NaN, last = Float.NaN;
            try (S3dTrainer trainer = new S3dTrainer(model, draft, AdamW.Hyper.defaults((float) c.trainLr()))) {
                for (int s = 0; s < c.trainSteps(); s++) {
                    last = trainer.step(S3dExample.sample(usable, c.draftTokens(), n, rng));
                    if (s == 0) {
                        first = last;
                    }
                }
            }
            return new Result(draft.values(), first, last, c.trainSteps());
        }
    }
}
