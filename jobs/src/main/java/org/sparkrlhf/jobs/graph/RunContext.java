package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.train.SpecialTokens;

/**
 * What the calls and hooks of a run share on the driver: its config, the runner of barrier stages,
 * the plan's placements, the models, the actor's special tokens and tokenizer, and how many
 * consecutive rows of the batch belong to one prompt ({@code group}: GRPO's and RLOO's samples per
 * prompt; 1 otherwise). A data-parallel rank always gets whole groups. {@code speculative}: the
 * actor's S3D draft when actor_gen decodes speculatively, else null.
 */
public record RunContext(RunConfig config, BarrierCallRunner runner, CallPlacements plan, RunModels models,
                         SpecialTokens special, HfTokenizer tokenizer, int group, SpeculativeDraft speculative) {
    public Placement placement(String call) {
        return plan.placement(call);
    }

    /** A call's description in Spark's UI and in errors: name, iteration, algorithm and layout. */
    public String describe(String call, int iteration, Placement at) {
        return call + " iteration " + iteration + " (" + config.algorithm().key() + ", " + at.layout() + ")";
    }
}
