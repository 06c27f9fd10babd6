package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.RefLogprobsCall;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * A model function call's fixed seconds as a run's calls pay them: real forward calls (the
 * reference model's, {@link RefLogprobsCall}) over the batch's rows on every device of the run,
 * data parallel, with the profiled model, less what the profile table gives for their passes. An
 * empty call (a function that returns at once) starts sooner and does nothing on the rank around
 * its passes: in the embedded PPO example (batch 64, two CPU slots) a forward call's stage started
 * 8 ms after submission against 2-3 ms for an empty call's, and the rank spent 9-10 ms in a call the
 * table priced at 5.5 ms; the estimate, with the empty call's 4.5 ms as the call overhead, was a
 * third of what ref_inf measured. The difference covers the model's lookup in the executor's
 * store, the rows' batching, the logprobs' extraction and the larger task.
 */
final class ForwardCallProfiler {
    /** The role the profiled model is held under on the executors while the calls run (dropped after). */
    static final String ROLE = "spark-rlhf-profile-forward";

    private ForwardCallProfiler() {
    }

    /**
     * What the table gives the passes of a forward call over {@code rows} on {@code devices} devices,
     * data parallel: the largest rank share's layers and head at its tokens, one micro-batch.
     */
    static double passSeconds(ModelSpec spec, String device, ProfileTable table, RunProfiler.Rows rows, int devices) {
        int largest = 0;
        for (int r = 0; r < devices; r++) {
            largest = Math.max(largest, rows.share(r, devices).prompts().length);
        }
        int len = rows.promptLen() + rows.genLen();
        double tokens = (double) largest * len;
        return spec.layers() * MicroBatchProfiler.row(table, spec.name(), device, ProfileTable.Op.LAYER_FWD, tokens, len)
                + MicroBatchProfiler.row(table, spec.name(), device, ProfileTable.Op.HEAD_FWD, tokens, 0);
    }

    /** A forward call of the model at {@code path} over {@code rows}, data parallel on every device. */
    static TimedCalls.Call call(BarrierCallRunner runner, ClusterInventory inventory, String path, int padId,
                                RunProfiler.Rows rows) {
        Placement all = Placement.dataParallel("profile-forward", ROLE, inventory.devices());
        int dp = all.size();
        ModelSource source = new ModelSource(path, 0);
        List<RefLogprobsCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            RunProfiler.RowsIn in = rows.share(r, dp);
            slices.add(new RefLogprobsCall.Slice(ROLE, source, dp, in.prompts(), in.responses(), padId));
        }
        return TimedCalls.of(runner, all, slices, new RefLogprobsCall(), "a forward call");
    }
}
