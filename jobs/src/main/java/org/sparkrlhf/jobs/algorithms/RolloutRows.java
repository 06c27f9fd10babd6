package org.sparkrlhf.jobs.algorithms;

import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.datasets.tables.FinishReason;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.PromptBatch;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Sequences;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The rollouts-table rows of an iteration of an algorithm that generates: one per sampled response
 * of {@code packed_input_ids} with its prompt, text, logprobs ({@code packed_logprobs},
 * {@code packed_ref_logprobs}), and what the algorithm made of it (per-token advantages, and for PPO
 * values, returns and per-token rewards; null where the algorithm has none), its reward and verdict,
 * its mean per-token KL to the reference, and the version of the policy that sampled it. A row's
 * {@code sample} counts the rows of its prompt id before it in the iteration, so that (run, iteration,
 * prompt id, sample) is a key even when a batch that crosses an epoch's end draws a prompt twice.
 */
public final class RolloutRows {
    private RolloutRows() {
    }

    public static List<RolloutRow> of(RunContext run, Keys keys, float[][] advantages, float[][] values,
                                      float[][] returns, float[][] tokenRewards, float[] rewards, String[] details,
                                      double[] kl, Instant now) {
        PromptBatch prompts = keys.get("packed_prompts", PromptBatch.class);
        Sequences rows = keys.get("packed_input_ids", Sequences.class);
        float[][] logprobs = keys.get("packed_logprobs", float[][].class);
        float[][] ref = keys.get("packed_ref_logprobs", float[][].class);
        long policyVersion = keys.result("actor_gen", Long.class);
        int perPrompt = rows.size() / prompts.size();
        List<RolloutRow> out = new ArrayList<>(rows.size());
        Map<String, Integer> samples = new HashMap<>();
        for (int s = 0; s < rows.size(); s++) {
            PromptRow prompt = prompts.rows().get(s / perPrompt);
            int sample = samples.merge(prompt.id(), 1, Integer::sum) - 1;
            out.add(new RolloutRow(prompt.id(), sample, prompt.group(), prompt.prompt(),
                    run.tokenizer().decode(rows.responseText(s)), rows.prompts()[s], rows.responses()[s], logprobs[s],
                    ref[s], values == null ? null : values[s], advantages[s], returns == null ? null : returns[s],
                    tokenRewards == null ? null : tokenRewards[s], rewards[s], details[s], kl[s],
                    rows.stopped()[s] ? FinishReason.STOP : FinishReason.LENGTH, policyVersion, now));
        }
        return out;
    }

    /** The fraction of rows whose verdict is {@code correct}. */
    public static double correctFraction(String[] details) {
        int correct = 0;
        for (String d : details) {
            if (org.sparkrlhf.datasets.tasks.Reward.CORRECT.equals(d)) {
                correct++;
            }
        }
        return (double) correct / details.length;
    }
}
