package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.List;

/**
 * Drops a finished run's replicas from the executors' model stores and frees them, so that a
 * later run in the same executors (an embedded JVM, a notebook's application) loads its own
 * models instead of finding the last run's under the same keys. Returns how many were dropped.
 */
public final class ReleaseModelsCall implements RankFunction<ReleaseModelsCall.Request, Integer> {
    /** The (role, version) pairs to drop, in the given layout, at the task's rank. */
    public record Request(List<String> roles, List<Long> versions, String layout) implements Serializable {
    }

    @Override
    public Integer apply(RankContext context, Request request) {
        ModelStore store = ModelStore.get();
        int dropped = 0;
        for (int i = 0; i < request.roles().size(); i++) {
            ModelStore.Key key = new ModelStore.Key(request.roles().get(i), request.versions().get(i), request.layout(),
                    context.rank());
            ResidentModel replica = store.find(key);
            if (replica != null && store.remove(key)) {
                replica.close();
                dropped++;
            }
        }
        return dropped;
    }
}
