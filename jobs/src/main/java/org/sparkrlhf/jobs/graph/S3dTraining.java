package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.S3dTrainCall;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.ArrayList;
import java.util.List;

/**
 * The s3d_train step after actor_train, on actor_train's placement: each data-parallel rank trains
 * the draft's mask embeddings on its rows of the iteration's sequences ({@link S3dTrainCall}), and
 * the driver keeps their mean (the ranks start from the same embeddings; with dp = 1 it is the
 * rank's). Figures: {@code seconds/s3d_train}, {@code s3d/train_loss} (the ranks' mean loss of the
 * last step, before its update).
 */
public final class S3dTraining {
    private S3dTraining() {
    }

    public static void run(RunContext run, String role, Placement at, Keys keys) {
        SpeculativeDraft draft = run.speculative();
        if (draft.config().trainSteps() == 0) {
            return;
        }
        long start = System.nanoTime();
        Sequences rows = keys.get("packed_input_ids", Sequences.class);
        int n = rows.size();
        int[][] texts = new int[n][];
        for (int i = 0; i < n; i++) {
            int[] p = rows.prompts()[i], r = rows.responses()[i];
            texts[i] = java.util.Arrays.copyOf(p, p.length + r.length);
            System.arraycopy(r, 0, texts[i], p.length, r.length);
        }
        int dp = at.dp();
        List<S3dTrainCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int[][] mine = java.util.Arrays.copyOfRange(texts, RowSplit.from(n, 1, dp, r), RowSplit.from(n, 1, dp, r + 1));
            slices.add(new S3dTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    run.config().optimizer(), draft.config(), draft.values(), mine,
                    Seeds.sample(run.config().seed(), keys.iteration()) * 31 + r));
        }
        List<S3dTrainCall.Result> results = at.perDataRank(run.runner().run(
                run.describe("s3d_train", keys.iteration(), at), at, at.perRank(slices), new S3dTrainCall()));
        float[] mean = new float[results.get(0).maskEmbeddings().length];
        double loss = 0;
        int trained = 0;
        for (S3dTrainCall.Result result : results) {
            float[] v = result.maskEmbeddings();
            for (int i = 0; i < mean.length; i++) {
                mean[i] += v[i] / results.size();
            }
            if (result.steps() > 0) {
                loss += result.lastLoss();
                trained++;
            }
        }
        draft.update(mean);
        keys.addSeconds("s3d_train", (System.nanoTime() - start) / 1e9);
        if (trained > 0) {
            keys.putFigure("s3d/train_loss", loss / trained);
        }
    }
}
