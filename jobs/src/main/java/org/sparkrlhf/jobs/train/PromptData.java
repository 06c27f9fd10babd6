package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.PromptBatch;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Prompts for the algorithms that generate (PPO, GRPO, RLOO, ReMax): {@code packed_prompts} (the
 * rows and their tokens) and {@code group_ids} (prompt i of the batch is group i: its samples are
 * rows i * group ... of the generated batch).
 */
public record PromptData(PromptSet prompts) implements TrainingData {
    public static PromptData read(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special,
                                  String output) {
        return new PromptData(PromptSet.read(spark, config, tokenizerDir, special.bos(), output));
    }

    @Override
    public int size() {
        return prompts.rows().size();
    }

    @Override
    public void batch(List<Integer> picked, Keys keys) {
        List<PromptRow> rows = new ArrayList<>(picked.size());
        int[][] tokens = new int[picked.size()][];
        int[] groups = new int[picked.size()];
        for (int i = 0; i < picked.size(); i++) {
            rows.add(prompts.rows().get(picked.get(i)));
            tokens[i] = prompts.tokens().get(picked.get(i));
            groups[i] = i;
        }
        keys.put("packed_prompts", new PromptBatch(rows, tokens));
        keys.put("group_ids", groups);
    }

    @Override
    public Lengths lengths() {
        int longest = 0;
        for (int[] t : prompts.tokens()) {
            longest = Math.max(longest, t.length);
        }
        return new Lengths(longest, Lengths.GENERATED);
    }

    @Override
    public String describe() {
        return prompts.rows().size() + " prompts (" + prompts.heldOut().size() + " held out)";
    }
}
