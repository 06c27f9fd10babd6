package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.planner.graph.ModelCall;

/**
 * Binds a GENERATE call: reads {@code packed_prompts}, writes its first output key (and the second,
 * the prompt mask) as the {@link Sequences} of {@link RunContext#group} samples per prompt (one when
 * greedy), and its third, when it has one, as their logprobs under the generating policy. Sampled
 * with the run's seed and the iteration ({@link Seeds#sample}). The call's result is the version of
 * the policy that sampled. The actor decodes with the run's S3D draft when it has one.
 */
public record GenerateBinding(boolean greedy) implements CallBinding {
    @Override
    public void run(RunContext run, ModelCall call, Placement at, Keys keys) {
        PromptBatch prompts = keys.get(call.inputKeys().get(0), PromptBatch.class);
        boolean withLogprobs = call.scoresSamples();
        // the policy version that sampled (the rollouts table's policy_version)
        keys.putResult(call.name(), run.models().version(call.role()));
        Generation.Output out = Generation.run(run, call.role(), at, keys, prompts.tokens(), greedy ? 1 : run.group(),
                greedy, Seeds.sample(run.config().seed(), keys.iteration()), withLogprobs,
                run.describe(call.name(), keys.iteration(), at), call.role().equals("actor") ? run.speculative() : null);
        keys.put(call.outputKeys().get(0), out.sequences());
        if (call.outputKeys().size() > 1) {
            keys.put(call.outputKeys().get(1), out.sequences());
        }
        if (withLogprobs) {
            keys.put(call.outputKeys().get(2), out.logprobs());
        }
    }
}
