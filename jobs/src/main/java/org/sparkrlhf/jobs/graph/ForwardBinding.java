package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.RefLogprobsCall;
import org.sparkrlhf.jobs.calls.RewardModelCall;
import org.sparkrlhf.jobs.calls.ValuesCall;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.planner.graph.ModelCall;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Binds an INFERENCE call: a forward over its first input key's {@link Sequences} that writes its
 * output key: each response token's log-prob ({@code float[][]}), the value model's value at each
 * response token ({@code float[][]}), or the reward model's score of each row ({@link Scores}).
 */
public record ForwardBinding(Output output) implements CallBinding {
    /** What the forward gives. */
    public enum Output {
        LOGPROBS, VALUES, SCORES
    }

    @Override
    public void run(RunContext run, ModelCall call, Placement at, Keys keys) {
        Sequences rows = keys.get(call.inputKeys().get(0), Sequences.class);
        String role = call.role();
        keys.addRealloc(run.models().prepare(role, at, false));
        long start = System.nanoTime();
        String description = run.describe(call.name(), keys.iteration(), at);
        int n = rows.size();
        int dp = at.dp();
        int group = n % run.group() == 0 ? run.group() : 1;
        Object value = switch (output) {
            case SCORES -> {
                float[] scores = RewardModelCall.score(run.runner(), role, at, run.models().source(role), rows.prompts(),
                        rows.responses(), group, description);
                yield new Scores(scores, new String[n]);
            }
            case LOGPROBS -> {
                List<RefLogprobsCall.Slice> slices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = RowSplit.from(n, group, dp, r);
                    int to = RowSplit.from(n, group, dp, r + 1);
                    slices.add(new RefLogprobsCall.Slice(role, run.models().source(role), dp,
                            Arrays.copyOfRange(rows.prompts(), from, to), Arrays.copyOfRange(rows.responses(), from, to),
                            run.special().pad()));
                }
                yield concat(at.perDataRank(run.runner().run(description, at, at.perRank(slices), new RefLogprobsCall())), n,
                        description);
            }
            case VALUES -> {
                List<ValuesCall.Slice> slices = new ArrayList<>(dp);
                for (int r = 0; r < dp; r++) {
                    int from = RowSplit.from(n, group, dp, r);
                    int to = RowSplit.from(n, group, dp, r + 1);
                    slices.add(new ValuesCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                            run.models().model(role).optimizer(), run.config().seed(),
                            Arrays.copyOfRange(rows.prompts(), from, to), Arrays.copyOfRange(rows.responses(), from, to),
                            run.special().pad()));
                }
                yield concat(at.perDataRank(run.runner().run(description, at, at.perRank(slices), new ValuesCall())), n,
                        description);
            }
        };
        run.models().holds(role, at);
        keys.addSeconds(call.name(), (System.nanoTime() - start) / 1e9);
        keys.put(call.outputKeys().get(0), value);
    }

    /** The data-parallel ranks' per-row results in rank order. */
    static float[][] concat(List<float[][]> results, int rows, String description) {
        float[][] out = new float[rows][];
        int k = 0;
        for (float[][] r : results) {
            for (float[] row : r) {
                out[k++] = row;
            }
        }
        if (k != rows) {
            throw new IllegalStateException(description + ": " + k + " rows came back for " + rows);
        }
        return out;
    }
}
