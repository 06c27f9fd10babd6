package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.datasets.PromptRow;

import java.util.List;

/** The value of {@code packed_prompts}: the iteration's prompts (dataset rows) and their tokens (bos first). */
public record PromptBatch(List<PromptRow> rows, int[][] tokens) {
    public PromptBatch {
        rows = List.copyOf(rows);
        if (rows.size() != tokens.length) {
            throw new IllegalArgumentException(rows.size() + " prompt rows, " + tokens.length + " token rows");
        }
    }

    public int size() {
        return tokens.length;
    }
}
