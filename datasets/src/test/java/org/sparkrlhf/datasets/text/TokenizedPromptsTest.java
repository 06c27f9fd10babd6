package org.sparkrlhf.datasets.text;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.ChatMessage;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.DatasetReader;
import org.sparkrlhf.datasets.JsonlFiles;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.datasets.TestSpark;
import org.sparkrlhf.datasets.ValidatedDataset;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.apache.spark.sql.functions.col;
import static org.junit.jupiter.api.Assertions.*;

/** Tokenizing a prompt dataset on Spark gives the driver-side tokenizer's ids and counts truncations. */
@Tag("spark-data")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class TokenizedPromptsTest {
    static final Path TOKENIZER = Path.of("src/test/resources/tokenizer");

    @Test
    void executorsTokenizeAsTheDriverAndTruncationsAreCounted(@TempDir Path dir) {
        SparkSession spark = TestSpark.session();
        List<PromptRow> prompts = List.of(
                PromptRow.text("p1", "What is 37 + 58?", "95", "add"),
                PromptRow.text("p2", "What is 3 * 4? Explain every step of the multiplication in detail.", "12", "mul"),
                PromptRow.chat("p3", List.of(new ChatMessage("system", "Be brief."), ChatMessage.user("9 - 3?")), "6", null));
        Path file = dir.resolve("prompts.jsonl");
        JsonlFiles.write(file, prompts);
        ValidatedDataset read = DatasetReader.read(spark, file.toString(), DatasetKind.PROMPTS);

        ChatTemplate template = ChatTemplate.fromTokenizerConfig(TOKENIZER);
        PromptTokenizer tokenizer = PromptTokenizer.open(TOKENIZER, template, 60, Truncation.LEFT);
        TokenizedPrompts.Result result = TokenizedPrompts.tokenize(read.rows().repartition(2), tokenizer);
        assertEquals(TokenizedPrompts.SCHEMA, result.rows().schema());
        int longest = 0;
        long truncated = 0;
        for (PromptRow p : prompts) {
            TokenizedPrompt expected = tokenizer.tokenize(p);
            Row r = result.rows().filter(col("id").equalTo(p.id())).first();
            assertEquals(p, PromptRow.fromRow(r));
            assertEquals(expected.text(), r.getAs("prompt_text"));
            assertEquals(expected.tokens().length, (int) r.getAs("prompt_length"));
            List<Integer> ids = r.getList(r.fieldIndex("prompt_tokens"));
            assertArrayEquals(expected.tokens(), ids.stream().mapToInt(Integer::intValue).toArray());
            assertEquals(expected.fullLength(), (int) r.getAs("full_prompt_length"));
            assertEquals(expected.truncated(), r.getAs("truncated"));
            longest = Math.max(longest, expected.fullLength());
            if (expected.truncated()) truncated++;
        }
        assertEquals(1, truncated, "p2 is the one long prompt");
        assertEquals(new TokenizationReport(3, 1, 60, longest), result.report());

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TokenizedPrompts.tokenize(
                read.rows(), PromptTokenizer.open(TOKENIZER, template, 60, Truncation.FAIL)));
        assertEquals("1 prompts are longer than the maximum prompt length 60: p2 (" + longest + " tokens)", e.getMessage());
    }
}
