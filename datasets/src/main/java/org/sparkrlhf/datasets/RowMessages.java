package org.sparkrlhf.datasets;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.util.ArrayList;
import java.util.List;

/** Chat messages to and from the {@code messages} column: an array of structs (role, content). */
final class RowMessages {
    private RowMessages() {
    }

    static List<ChatMessage> fromRow(Row r) {
        int i = r.fieldIndex("messages");
        if (r.isNullAt(i)) return null;
        // Rows collected from Spark hold a Scala Seq; rows built by toRows() hold a Java List.
        List<Row> rows = r.get(i) instanceof List<?> ? r.getAs(i) : r.getList(i);
        List<ChatMessage> out = new ArrayList<>(rows.size());
        for (Row m : rows) out.add(new ChatMessage(m.getAs("role"), m.getAs("content")));
        return out;
    }

    static List<Row> toRows(List<ChatMessage> messages) {
        if (messages == null) return null;
        List<Row> out = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) out.add(RowFactory.create(m.role(), m.content()));
        return out;
    }
}
