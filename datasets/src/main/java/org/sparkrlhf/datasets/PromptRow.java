package org.sparkrlhf.datasets;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/**
 * One prompt of a prompt dataset: an id, either a prompt text or chat messages (exactly one of the
 * two), an optional reference answer (what a verifiable reward checks against) and an optional
 * group (for per-group metrics and group-robust objectives).
 */
public record PromptRow(String id, String prompt, List<ChatMessage> messages, String reference, String group)
        implements Serializable {
    public PromptRow {
        Objects.requireNonNull(id, "id");
        if ((prompt == null) == (messages == null)) {
            throw new IllegalArgumentException("prompt " + id + ": needs exactly one of a prompt text or chat messages");
        }
        messages = messages == null ? null : List.copyOf(messages);
    }

    public static PromptRow text(String id, String prompt, String reference, String group) {
        return new PromptRow(id, prompt, null, reference, group);
    }

    public static PromptRow chat(String id, List<ChatMessage> messages, String reference, String group) {
        return new PromptRow(id, null, messages, reference, group);
    }

    /** Reads a row of {@link DatasetKind#PROMPTS}' schema. */
    public static PromptRow fromRow(Row r) {
        return new PromptRow(r.getAs("id"), r.getAs("prompt"), RowMessages.fromRow(r), r.getAs("reference"), r.getAs("group"));
    }

    /** A row of {@link DatasetKind#PROMPTS}' schema. */
    public Row toRow() {
        return RowFactory.create(id, prompt, RowMessages.toRows(messages), reference, group);
    }
}
