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
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;
import org.sparkrlhf.planner.graph.ModelCall;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

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
        Step<?, ?> step = step(config, call, path, padId, valueHead, rows, all.dp());
        long[] version = {0};
        return new TimedCalls.Call(List.of(role), "a train call", () -> version[0] = step.run(runner, all, role, 0,
                all.dp(), version[0]));
    }

    /**
     * The same train calls without data-parallel peers: on every device at once, one call each (its
     * own copy of the model) over the rows rank r of {@link #call} gets, so that each device does a
     * data-parallel rank's work, beside the others as in {@link #call}, and syncs with no one. Against
     * {@link #call} it gives a training step's seconds per data-parallel peer.
     */
    static TimedCalls.Call alone(BarrierCallRunner runner, ClusterInventory inventory, RunConfig config, ModelCall call,
                                 String path, int padId, boolean valueHead, RunProfiler.Rows rows) {
        List<DeviceSlot> devices = inventory.devices();
        int n = devices.size();
        // a role per device: two devices of one executor share its model store
        List<String> roles = new ArrayList<>(n);
        for (int d = 0; d < n; d++) {
            roles.add(ROLE + call.name() + "-alone-" + d);
        }
        Step<?, ?> step = step(config, call, path, padId, valueHead, rows, n);
        long[] versions = new long[n];
        // prestarted: a task handed to a newly created thread waits for a CPU slice behind busy ones (as the call
        // scheduler found)
        ThreadPoolExecutor pool = new ThreadPoolExecutor(n, n, 5, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "spark-rlhf-profile-alone");
            t.setDaemon(true);
            return t;
        });
        pool.allowCoreThreadTimeOut(true);
        return new TimedCalls.Call(roles, "a train call alone on each device", () -> {
            pool.prestartAllCoreThreads();
            List<Future<?>> running = new ArrayList<>(n);
            for (int d = 0; d < n; d++) {
                int r = d;
                Placement one = Placement.dataParallel("profile-train-alone", roles.get(r), List.of(devices.get(r)));
                running.add(pool.submit(() -> versions[r] = step.run(runner, one, roles.get(r), r, 1, versions[r])));
            }
            for (Future<?> f : running) {
                try {
                    f.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while profiling", e);
                } catch (ExecutionException e) {
                    throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
                }
            }
        });
    }

    /** A train call's executor function and its ranks' inputs, by the rows rank r of a data-parallel group gets. */
    private record Step<S extends Serializable, R extends Serializable & TrainResult>(Slices<S> slices, RankFunction<S, R> fn) {
        /**
         * Runs the call on {@code at}, its ranks over the rows of ranks {@code first}, {@code first + 1}, ... of the
         * cut, as members of a data-parallel group of {@code dp}; returns the new version.
         */
        long run(BarrierCallRunner runner, Placement at, String role, int first, int dp, long version) {
            List<S> in = new ArrayList<>(at.dp());
            for (int r = 0; r < at.dp(); r++) {
                in.add(slices.slice(role, first + r, dp, version));
            }
            List<RankResult<R>> out = runner.run("spark-rlhf: profile: a train call", at, in, fn);
            return out.get(0).value().version();
        }
    }

    /** The input, under {@code role}, of a rank with rank r's rows of the cut, in a data-parallel group of {@code dp}, from {@code version}. */
    private interface Slices<S> {
        S slice(String role, int r, int dp, long version);
    }

    /** {@code call}'s steps over {@code rows} cut for {@code ranks} data-parallel ranks. */
    private static Step<?, ?> step(RunConfig config, ModelCall call, String path, int padId, boolean valueHead,
                                   RunProfiler.Rows rows, int ranks) {
        RunProfiler.RowsIn batch = rows.share(0, 1);
        ModelSource source = new ModelSource(path, 0);
        RunConfig.OptimizerConfig optimizer = config.optimizer();
        List<RankRows> cut = new ArrayList<>(ranks);
        for (int r = 0; r < ranks; r++) {
            cut.add(RowSplit.rankRows(batch.responses(), 1, ranks, r, call.trainSteps()));
        }
        float[][] logprobs = perToken(batch.responses(), -1f);
        if (valueHead) {
            float[][] returns = perToken(batch.responses(), 1f);
            return new Step<>((role, r, dp, version) -> {
                RankRows rr = cut.get(r);
                return new CriticTrainCall.Slice(role, source, version, dp, optimizer, config.seed(),
                        rr.of(batch.prompts()), rr.of(batch.responses()), rr.of(logprobs), rr.of(returns), 0.2, 0.5,
                        call.epochs(), rr.miniBatches(), padId);
            }, new CriticTrainCall());
        }
        float[] advantages = new float[batch.responses().length];
        for (int i = 0; i < advantages.length; i++) {
            advantages[i] = i % 2 == 0 ? 1f : -1f;
        }
        return new Step<>((role, r, dp, version) -> {
            RankRows rr = cut.get(r);
            return new GrpoTrainCall.Slice(role, source, version, dp, optimizer, rr.of(batch.prompts()),
                    rr.of(batch.responses()), rr.of(logprobs), rr.of(logprobs), rr.of(advantages), 0.2, 0.05,
                    call.epochs(), rr.miniBatches(), padId);
        }, new GrpoTrainCall());
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
