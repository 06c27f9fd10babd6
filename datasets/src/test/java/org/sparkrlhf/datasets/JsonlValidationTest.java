package org.sparkrlhf.datasets;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Every kind of bad JSONL row is reported with its file, line and field; nothing is written. */
@Tag("spark-data")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class JsonlValidationTest {
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
    }

    // Line numbers are the file's, blank lines included.
    static final List<String> LINES = List.of(
            "{\"id\": \"a\", \"prompt\": \"What is 1 + 1?\", \"reference\": \"2\"}",
            "{\"id\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"group\": \"g\"}",
            "",
            "{\"id\": \"c\", \"prompt\": \"  \"}",
            "{\"id\": \"d\", \"prompt\": 42}",
            "{\"prompt\": \"no id\"}",
            "{\"id\": \"f\"}",
            "{\"id\": \"g\", \"prompt\": \"unterminated",
            "{\"id\": \"h\", \"messages\": [{\"role\": \"user\"}, {\"role\": 3, \"content\": \"x\"}, 5]}",
            "{\"id\": \"i\", \"prompt\": \"p\", \"messages\": [{\"role\": \"user\", \"content\": \"p\"}]}",
            "{\"id\": \"j\", \"prompt\": \"p\", \"group\": 3}",
            "[1, 2]",
            "{\"id\": 1.5, \"prompt\": \"p\"}",
            "{\"id\": \"k\", \"messages\": []}",
            "{\"id\": \"l\", \"messages\": \"hello\"}",
            "{\"id\": null, \"prompt\": \"p\", \"reference\": \"\"}",
            "{\"id\": \"m\", \"prompt\": \"fine\", \"extra\": {\"ignored\": true}}");

    static final List<String> EXPECTED = List.of(
            "line 4: field 'prompt': empty text",
            "line 5: field 'prompt': expected a string, got an integer",
            "line 6: field 'id': missing",
            "line 7: field 'prompt' (or 'messages'): missing",
            "line 8: not valid JSON",
            "line 9: field 'messages[0].content': missing; field 'messages[1].role': expected a string, got an integer; "
                    + "field 'messages[2]': expected an object with role and content, got an integer",
            "line 10: fields 'prompt' and 'messages' are both given; a row has one or the other",
            "line 11: field 'group': expected a string, got an integer",
            "line 12: expected a JSON object, got an array",
            "line 13: field 'id': expected a string or an integer, got a number",
            "line 14: field 'messages': no messages",
            "line 15: field 'messages': expected an array of {role, content} objects, got a string",
            "line 16: field 'id': null; field 'reference': empty text");

    @Test
    void everyBadRowIsReportedWithFileLineAndFieldAndNothingIsWritten(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("prompts.jsonl");
        Files.write(file, LINES);
        Path out = dir.resolve("table");
        InvalidDatasetException e = assertThrows(InvalidDatasetException.class, () -> DatasetImport.run(spark,
                "--kind", "prompts", "--in", file.toString(), "--out", out.toString()));
        ValidationReport report = e.report().orElseThrow();
        assertEquals(16, report.rows());
        assertEquals(13, report.badRows());
        assertEquals(10, report.firstErrors().size());
        String prefix = file.toUri().toString().replace("file:///", "file:/") + ", ";
        for (int i = 0; i < 10; i++) assertEquals(prefix + EXPECTED.get(i), report.firstErrors().get(i));
        assertTrue(e.getMessage().contains(prefix + EXPECTED.get(0)), e.getMessage());
        assertFalse(Files.exists(out), "nothing is written when validation fails");
    }

    @Test
    void skippingBadRowsReportsTheirCountAndReasons(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("prompts.jsonl");
        Files.write(file, LINES);
        ValidatedDataset read = DatasetReader.read(spark, file.toString(), DatasetKind.PROMPTS,
                ReadOptions.defaults().withSkipBadRows(true).withErrorsReported(50));
        assertEquals(13, read.report().badRows());
        assertEquals(3 + 13, read.report().rows());
        List<String> reasons = read.report().firstErrors().stream().map(s -> s.substring(s.indexOf(", ") + 2)).toList();
        assertEquals(EXPECTED, reasons);
        List<PromptRow> rows = read.collectPrompts();
        assertEquals(List.of(
                PromptRow.text("a", "What is 1 + 1?", "2", null),
                PromptRow.chat("7", List.of(ChatMessage.user("hi")), null, "g"),
                PromptRow.text("m", "fine", null, null)), rows);
    }
}
