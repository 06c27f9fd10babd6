package org.sparkrlhf.datasets;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/** One supervised fine-tuning example: a prompt (text or chat messages) and the answer to learn. */
public record SftRow(String id, String prompt, List<ChatMessage> messages, String answer) implements Serializable {
    public SftRow {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(answer, "answer");
        if ((prompt == null) == (messages == null)) {
            throw new IllegalArgumentException("SFT example " + id + ": needs exactly one of a prompt text or chat messages");
        }
        messages = messages == null ? null : List.copyOf(messages);
    }

    public static SftRow fromRow(Row r) {
        return new SftRow(r.getAs("id"), r.getAs("prompt"), RowMessages.fromRow(r), r.getAs("answer"));
    }

    public Row toRow() {
        return RowFactory.create(id, prompt, RowMessages.toRows(messages), answer);
    }
}
