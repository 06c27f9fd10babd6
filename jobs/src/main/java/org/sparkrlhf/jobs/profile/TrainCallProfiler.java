package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.calls.CriticTrainCall;
import org.sparkrlhf.jobs.calls.GrpoTrainCall;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.TrainResult;
import org.sparkrlhf.jobs.graph.RankRows;
import org.sparkrlhf.jobs.graph.RowSplit;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.RankResult;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A train call's seconds as a run pays them: real train calls over the batch's rows on every device
 * of the run, data parallel (as the baseline plan places them), with the profiled model, the run's
 * optimizer settings and the run's train call's steps (its epochs over its mini-batches, each rank's
 * rows of a mini-batch cut as the runtime cuts them, {@link RowSplit#rankRows}). A language model
 * trains on GRPO's policy loss (the policy losses differ by a few products per token), a value
 * model on PPO's clipped value loss. Each call continues from the version the previous one left in
 * the executors' stores, as a run's calls do. Traced in the PPO example on local-cluster (32 rows,
 * four CPU slots), actor_train took 0.065-0.070 s against the 0.045 s its passes, gradient sync,
 * optimizer and call overhead add up to: what a forward call's calibration
 * ({@link ForwardCallProfiler}) leaves out, the loss over the step's rows, the step's all-reduces of
 * the loss and clip counts, the rows' cut into mini-batches, the larger inputs.
 */
final class TrainCallProfiler {
    /** The role the profiled model is held under on the executors while the calls run (dropped after), + the call's name. */
    static final String ROLE = "spark-rlhf-profile-train-";

    private TrainCallProfiler() {
    }

    /**
     * Train calls of the model at {@code path} over {@code rows}, data parallel on every device, with
     * {@code call}'s steps; each continues from the version the previous one left.
     */
    static TimedCalls.Call call(BarrierCallRunner runner, ClusterInventory inventory, RunConfig config, ModelCall call,
                                String path, int padId, boolean valueHead, RunProfiler.Rows rows) {
        String role = ROLE + call.name();
        Placement all = Placement.dataParallel("profile-train", role, inventory.devices());
        int dp = all.size();
        RunProfiler.RowsIn batch = rows.share(0, 1);
        ModelSource source = new ModelSource(path, 0);
        RunConfig.OptimizerConfig optimizer = config.optimizer();
        List<RankRows> ranks = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            ranks.add(RowSplit.rankRows(batch.responses(), 1, dp, r, call.trainSteps()));
        }
        float[][] logprobs = perToken(batch.responses(), -1f);
        if (valueHead) {
            float[][] returns = perToken(batch.responses(), 1f);
            return timed(runner, all, (r, version) -> {
                RankRows rr = ranks.get(r);
                return new CriticTrainCall.Slice(role, source, version, dp, optimizer, config.seed(),
                        rr.of(batch.prompts()), rr.of(batch.responses()), rr.of(logprobs), rr.of(returns), 0.2, 0.5,
                        call.epochs(), rr.miniBatches(), padId);
            }, new CriticTrainCall());
        }
        float[] advantages = new float[batch.responses().length];
        for (int i = 0; i < advantages.length; i++) {
            advantages[i] = i % 2 == 0 ? 1f : -1f;
        }
        return timed(runner, all, (r, version) -> {
            RankRows rr = ranks.get(r);
            return new GrpoTrainCall.Slice(role, source, version, dp, optimizer, rr.of(batch.prompts()),
                    rr.of(batch.responses()), rr.of(logprobs), rr.of(logprobs), rr.of(advantages), 0.2, 0.05,
                    call.epochs(), rr.miniBatches(), padId);
        }, new GrpoTrainCall());
    }

    /** Rank r's input for a call that starts from {@code version}. */
    private interface Slices<S> {
        S slice(int r, long version);
    }

    private static <S extends Serializable, R extends Serializable & TrainResult> TimedCalls.Call timed(
            BarrierCallRunner runner, Placement all, Slices<S> slices, RankFunction<S, R> fn) {
        long[] version = {0};
        return new TimedCalls.Call(all.role(), "a train call", () -> {
            List<S> in = new ArrayList<>(all.dp());
            for (int r = 0; r < all.dp(); r++) {
                in.add(slices.slice(r, version[0]));
            }
            List<RankResult<R>> out = runner.run("spark-rlhf: profile: a train call", all, in, fn);
            version[0] = out.get(0).value().version();
        });
    }

    private static float[][] perToken(int[][] responses, float value) {
        float[][] out = new float[responses.length][];
        for (int i = 0; i < out.length; i++) {
            out[i] = new float[responses[i].length];
            Arrays.fill(out[i], value);
        }
        return out;
    }
}
