package org.sparkrlhf.jobs.algorithms;

import org.sparkrlhf.datasets.tasks.Reward;
import org.sparkrlhf.datasets.tasks.RewardFunction;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.PromptBatch;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Scores;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.planner.graph.DriverHook;

/**
 * The {@code reward_fn} hooks: a reward function of the datasets module (an answer checker) scores
 * each response, decoded without its eos, against its prompt's row ({@code packed_prompts}; the
 * rows of a prompt's samples are consecutive). Needs no model, so it runs on the driver.
 */
public record RewardFunctionHook(RewardFunction function) implements Hook {
    @Override
    public void run(RunContext run, DriverHook hook, Keys keys) {
        PromptBatch prompts = keys.get(hook.inputKeys().get(0), PromptBatch.class);
        Sequences rows = keys.get(hook.inputKeys().get(1), Sequences.class);
        int perPrompt = rows.size() / prompts.size();
        float[] values = new float[rows.size()];
        String[] details = new String[rows.size()];
        for (int s = 0; s < rows.size(); s++) {
            Reward verdict = function.score(prompts.rows().get(s / perPrompt), run.tokenizer().decode(rows.responseText(s)));
            values[s] = (float) verdict.value();
            details[s] = verdict.detail();
        }
        keys.put(hook.outputKeys().get(0), new Scores(values, details));
    }
}
