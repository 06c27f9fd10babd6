package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.calls.GenerateCall;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;

import java.util.ArrayList;
import java.util.List;

/**
 * A generation call's seconds as a run pays them: real generation calls ({@link GenerateCall}) over
 * the batch's rows on every device of the run, data parallel, with the profiled model and the run's
 * sampling settings, and the old logprobs' forward when the run's call scores its samples. No row
 * stops early (no end-of-sequence ids), as the planner assumes. Traced in the embedded GRPO example
 * (64 x 8 rows, two CPU slots), a rank's generation took 53 ms against the 27 ms the table gives
 * its prefill and decoding steps, and its logprobs' forward 38 ms against 21: what a forward call's
 * calibration ({@link ForwardCallProfiler}) leaves out, the prefill's and the sampler's
 * bookkeeping, the caches, the responses' extraction.
 */
final class GenerateCallProfiler {
    /** The role the profiled model is held under on the executors while the calls run (dropped after). */
    static final String ROLE = "spark-rlhf-profile-generate";

    private GenerateCallProfiler() {
    }

    /** A generation call of the model at {@code path} over {@code rows}, data parallel on every device. */
    static TimedCalls.Call call(BarrierCallRunner runner, ClusterInventory inventory, RunConfig config, String path,
                                int padId, boolean withLogprobs, RunProfiler.Rows rows) {
        Placement all = Placement.dataParallel("profile-generate", ROLE, inventory.devices());
        int dp = all.size();
        RunConfig.GenerationConfig g = config.generation();
        ModelSource source = new ModelSource(path, 0);
        List<GenerateCall.Slice> slices = new ArrayList<>(dp);
        int first = 0;
        for (int r = 0; r < dp; r++) {
            int[][] prompts = rows.share(r, dp).prompts();
            slices.add(new GenerateCall.Slice(ROLE, source, 0, dp, config.optimizer(), prompts, first, 1, rows.genLen(),
                    (float) g.temperature(), g.topK(), (float) g.topP(), config.seed(), new int[0], padId, withLogprobs));
            first += prompts.length;
        }
        return TimedCalls.of(runner, all, slices, new GenerateCall(), "a generation call");
    }
}
