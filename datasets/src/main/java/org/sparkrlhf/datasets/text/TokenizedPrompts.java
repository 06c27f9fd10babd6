package org.sparkrlhf.datasets.text;

import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.PromptRow;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

import static org.apache.spark.sql.functions.*;

/**
 * Tokenizes a prompt dataset on the executors. Tokenizing has no Spark built-in, so this one step
 * is a mapPartitions over rows; the counting around it is built-in expressions.
 */
public final class TokenizedPrompts {
    private TokenizedPrompts() {
    }

    /** The columns added to a prompt dataset's. */
    public static final StructType ADDED = new StructType()
            .add("prompt_text", DataTypes.StringType)
            .add("prompt_tokens", DataTypes.createArrayType(DataTypes.IntegerType))
            .add("prompt_length", DataTypes.IntegerType)
            .add("full_prompt_length", DataTypes.IntegerType)
            .add("truncated", DataTypes.BooleanType);

    public static final StructType SCHEMA = merge(DatasetKind.PROMPTS.schema(), ADDED);

    /** A tokenized dataset (recomputed on each use unless cached) and what tokenizing it did. */
    public record Result(Dataset<Row> rows, TokenizationReport report) {
    }

    /**
     * Tokenizes the rows of a prompt dataset (the PROMPTS schema, as DatasetReader returns it) and
     * counts (one Spark job) the prompts truncated. With {@link Truncation#FAIL} an over-long prompt
     * fails this call, naming the first ones.
     */
    public static Result tokenize(Dataset<Row> prompts, PromptTokenizer tokenizer) {
        for (String f : DatasetKind.PROMPTS.fieldNames()) {
            if (!List.of(prompts.columns()).contains(f)) {
                throw new IllegalArgumentException("tokenize: the rows have no column '" + f + "'; expected a prompt dataset");
            }
        }
        Dataset<Row> canonical = prompts.select(DatasetKind.PROMPTS.fieldNames().stream().map(n -> col(n)).toArray(org.apache.spark.sql.Column[]::new));
        Dataset<Row> rows = canonical.mapPartitions(new Tokenize(tokenizer), Encoders.row(SCHEMA));
        Row counts = rows.agg(count(lit(1)), coalesce(sum(when(col("truncated"), 1L).otherwise(0L)), lit(0L)),
                coalesce(max(col("full_prompt_length")), lit(0))).first();
        TokenizationReport report = new TokenizationReport(counts.getLong(0), counts.getLong(1),
                tokenizer.maxPromptTokens(), counts.getInt(2));
        if (report.truncated() > 0 && tokenizer.truncation() == Truncation.FAIL) {
            List<String> ids = new ArrayList<>();
            for (Row r : rows.filter(col("truncated")).select("id", "full_prompt_length").limit(10).collectAsList()) {
                ids.add(r.getString(0) + " (" + r.getInt(1) + " tokens)");
            }
            throw new IllegalArgumentException(report.truncated() + " prompts are longer than the maximum prompt length "
                    + tokenizer.maxPromptTokens() + ": " + String.join(", ", ids) + (report.truncated() > ids.size() ? ", ..." : ""));
        }
        return new Result(rows, report);
    }

    private static final class Tokenize implements MapPartitionsFunction<Row, Row> {
        private final PromptTokenizer tokenizer;

        Tokenize(PromptTokenizer tokenizer) {
            this.tokenizer = tokenizer;
        }

        @Override
        public Iterator<Row> call(Iterator<Row> input) {
            return new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return input.hasNext();
                }

                @Override
                public Row next() {
                    Row r = input.next();
                    TokenizedPrompt t = tokenizer.tokenizeWithoutFailing(PromptRow.fromRow(r));
                    Integer[] ids = new Integer[t.tokens().length];
                    for (int i = 0; i < ids.length; i++) ids[i] = t.tokens()[i];
                    return RowFactory.create(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4),
                            t.text(), ids, ids.length, t.fullLength(), t.truncated());
                }
            };
        }
    }

    private static StructType merge(StructType a, StructType b) {
        StructType out = a;
        for (var f : b.fields()) out = out.add(f);
        return out;
    }
}
