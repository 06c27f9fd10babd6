package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;

import java.io.Serializable;
import java.util.List;

/**
 * Empties the executors' model stores of a run's roles, every version and layout: what a run that
 * recovers from a lost executor does on the surviving ones before it resumes from its checkpoint,
 * so that each model is loaded again from there. Several ranks on one executor clear the same
 * store; the first does the work. Returns how many copies the rank dropped.
 */
public final class ClearModelsCall implements RankFunction<ClearModelsCall.Request, Integer> {
    /** The run's roles. */
    public record Request(List<String> roles) implements Serializable {
        public Request {
            roles = List.copyOf(roles);
        }
    }

    @Override
    public Integer apply(RankContext context, Request request) {
        return ModelStore.get().dropRoles(request.roles());
    }
}
