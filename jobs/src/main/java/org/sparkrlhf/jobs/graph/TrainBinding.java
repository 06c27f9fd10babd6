package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * Binds a TRAIN call to the train executor function with a named {@link TrainLoss}: the model's
 * current version is moved to the call's placement with its optimizer state when it is not there,
 * each data-parallel rank gets whole groups of rows of each of the call's mini-batches
 * ({@link RowSplit#rankRows}), and after the steps the
 * placement holds the new version (the model's home). The data-parallel ranks' results, in rank
 * order, are the call's result ({@code List<R>}).
 */
public record TrainBinding<S extends Serializable, R extends Serializable & TrainResult>(TrainLoss<S, R> loss)
        implements CallBinding {
    @Override
    public void run(RunContext run, ModelCall call, Placement at, Keys keys) {
        String role = call.role();
        keys.addRealloc(run.models().prepare(role, at, true));
        long start = System.nanoTime();
        int[][] responses = keys.get("packed_input_ids", Sequences.class).responses();
        int dp = at.dp();
        int group = responses.length % run.group() == 0 ? run.group() : 1;
        List<S> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            slices.add(loss.slices().slice(run, call, keys, dp, r,
                    RowSplit.rankRows(responses, group, dp, r, call.trainSteps())));
        }
        List<R> results = at.perDataRank(run.runner().run(run.describe(call.name(), keys.iteration(), at), at,
                at.perRank(slices), loss.function()));
        run.models().trained(role, results.get(0).version(), at);
        keys.addSeconds(call.name(), (System.nanoTime() - start) / 1e9);
        keys.putResult(call.name(), List.copyOf(results));
    }
}
