package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.S3dTrainCall;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.planner.graph.ModelCall;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Binds a DRAFT_TRAIN call (s3d_train): the actor's current version is moved to the call's placement
 * as weights (the draft trains its mask embeddings through frozen weights), each data-parallel rank
 * gets its rows of the iteration's sequences ({@link S3dTrainCall}), and the driver keeps the
 * trained draft and its optimizer state ({@link SpeculativeDraft#trained}; the ranks end with the
 * same ones). Figures: {@code seconds/s3d_train}, {@code s3d/train_loss} (the ranks' mean loss of
 * the last step, before its update, over the ranks that had examples).
 */
public record S3dTrainBinding() implements CallBinding {
    @Override
    public void run(RunContext run, ModelCall call, Placement at, Keys keys) {
        SpeculativeDraft draft = run.speculative();
        if (draft == null) {
            throw new IllegalStateException(call.name() + ": the run has no speculative draft to train");
        }
        String role = call.role();
        keys.addRealloc(run.models().prepare(role, at, false));
        long start = System.nanoTime();
        Sequences rows = keys.get(call.inputKeys().get(0), Sequences.class);
        int n = rows.size();
        int[][] texts = new int[n][];
        for (int i = 0; i < n; i++) {
            int[] p = rows.prompts()[i], r = rows.responses()[i];
            texts[i] = Arrays.copyOf(p, p.length + r.length);
            System.arraycopy(r, 0, texts[i], p.length, r.length);
        }
        int dp = at.dp();
        SpeculativeDraft.State state = draft.state();
        List<S3dTrainCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int[][] mine = Arrays.copyOfRange(texts, RowSplit.from(n, 1, dp, r), RowSplit.from(n, 1, dp, r + 1));
            slices.add(new S3dTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    run.config().optimizer(), draft.config(), call.trainSteps(), state.values(), state.moments(), mine,
                    Seeds.sample(run.config().seed(), keys.iteration()) * 31 + r));
        }
        List<S3dTrainCall.Result> results = at.perDataRank(run.runner().run(
                run.describe(call.name(), keys.iteration(), at), at, at.perRank(slices), new S3dTrainCall()));
        // the gradient was averaged over the ranks: every rank holds the same draft
        draft.trained(results.get(0).maskEmbeddings(), results.get(0).moments());
        double loss = 0;
        int trained = 0;
        for (S3dTrainCall.Result result : results) {
            if (!Float.isNaN(result.lastLoss())) {
                loss += result.lastLoss();
                trained++;
            }
        }
        keys.addSeconds(call.name(), (System.nanoTime() - start) / 1e9);
        if (trained > 0) {
            keys.putFigure("s3d/train_loss", loss / trained);
        }
    }
}
