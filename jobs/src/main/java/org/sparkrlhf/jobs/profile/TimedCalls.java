package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/** Real model function calls timed as a run pays them, for the profiler's calibrations. */
final class TimedCalls {
    private TimedCalls() {
    }

    /**
     * The median wall time of {@code calls} calls of {@code fn} over {@code slices} on {@code all},
     * after {@code warmUp} untimed ones; the model the calls loaded under {@code all}'s role is dropped
     * from every device afterwards.
     */
    static <I extends Serializable, R extends Serializable> double median(BarrierCallRunner runner, ClusterInventory inventory,
                                                                          Placement all, List<I> slices, RankFunction<I, R> fn,
                                                                          String what, int warmUp, int calls) {
        double[] s = new double[calls];
        try {
            for (int i = 0; i < warmUp + calls; i++) {
                long t0 = System.nanoTime();
                runner.run("spark-rlhf: profile: " + what, all, slices, fn);
                if (i >= warmUp) {
                    s[i - warmUp] = (System.nanoTime() - t0) / 1e9;
                }
            }
        } finally {
            String role = all.role();
            runner.run("profile-drop", "spark-rlhf: profile: drop the model of " + what, inventory.devices(),
                    new ArrayList<>(Collections.nCopies(inventory.size(), role)),
                    (context, r) -> ModelStore.get().dropRoles(List.of(r)));
        }
        Arrays.sort(s);
        return s[calls / 2];
    }
}
