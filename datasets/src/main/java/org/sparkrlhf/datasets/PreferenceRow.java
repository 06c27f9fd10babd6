package org.sparkrlhf.datasets;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/**
 * One preference pair: a prompt (text or chat messages), the preferred and the dispreferred
 * answer, and optionally the group whose preference it is (for group-robust DPO/IPO).
 */
public record PreferenceRow(String id, String prompt, List<ChatMessage> messages, String chosen, String rejected,
                            String group) implements Serializable {
    public PreferenceRow {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(chosen, "chosen");
        Objects.requireNonNull(rejected, "rejected");
        if ((prompt == null) == (messages == null)) {
            throw new IllegalArgumentException("preference pair " + id + ": needs exactly one of a prompt text or chat messages");
        }
        messages = messages == null ? null : List.copyOf(messages);
    }

    public static PreferenceRow fromRow(Row r) {
        return new PreferenceRow(r.getAs("id"), r.getAs("prompt"), RowMessages.fromRow(r), r.getAs("chosen"),
                r.getAs("rejected"), r.getAs("group"));
    }

    public Row toRow() {
        return RowFactory.create(id, prompt, RowMessages.toRows(messages), chosen, rejected, group);
    }
}
