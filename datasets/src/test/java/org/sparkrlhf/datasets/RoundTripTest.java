package org.sparkrlhf.datasets;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tasks.ShippedDatasets;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/** Every format round-trips through JSONL (one file and Spark's part files), Parquet and Delta. */
@Tag("spark-data")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class RoundTripTest {
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
    }

    static final List<ChatMessage> CHAT = List.of(
            new ChatMessage("system", "You answer with a number."),
            ChatMessage.user("What is 3 * 4?\nThink \"carefully\"."));

    static final List<PromptRow> PROMPTS = List.of(
            PromptRow.text("p1", "What is 37 + 58?", "95", "add"),
            PromptRow.text("p2", "Ünïcödé ✓ and a tab\there", null, null),
            PromptRow.chat("p3", CHAT, "12", "mul"),
            PromptRow.text("p4", "  leading and trailing spaces are kept  ", "x", null));

    static final List<SftRow> SFT = List.of(
            new SftRow("s1", "What is 2 + 2?", null, "4"),
            new SftRow("s2", null, CHAT, "12\n"));

    static final List<PreferenceRow> PREFERENCES = List.of(
            new PreferenceRow("r1", "What is 9 - 3?", null, "6", "The answer is 7.", "concise"),
            new PreferenceRow("r2", null, CHAT, "3 * 4 = 12. The answer is 12.", "12", "explained"),
            new PreferenceRow("r3", "Say hi", null, "hi", "bye", null));

    @Test
    void promptsRoundTrip(@TempDir Path dir) {
        roundTrip(dir, DatasetKind.PROMPTS, PROMPTS, PromptRow::toRow, ValidatedDataset::collectPrompts, PromptRow::id);
    }

    @Test
    void sftRoundTrips(@TempDir Path dir) {
        roundTrip(dir, DatasetKind.SFT, SFT, SftRow::toRow, ValidatedDataset::collectSft, SftRow::id);
    }

    @Test
    void preferencesRoundTrip(@TempDir Path dir) {
        roundTrip(dir, DatasetKind.PREFERENCES, PREFERENCES, PreferenceRow::toRow,
                ValidatedDataset::collectPreferences, PreferenceRow::id);
    }

    private static <T> void roundTrip(Path dir, DatasetKind kind, List<T> records, Function<T, Row> toRow,
                                      Function<ValidatedDataset, List<T>> collect, Function<T, String> id) {
        List<Row> rows = new ArrayList<>();
        for (T r : records) rows.add(toRow.apply(r));

        List<String> paths = new ArrayList<>();
        Path single = dir.resolve("one-file.jsonl");
        JsonlFiles.write(single, records);
        paths.add(single.toString());
        for (DatasetFormat f : DatasetFormat.values()) {
            // As a URI: any Hadoop FileSystem path works the same.
            String path = dir.resolve("written-" + f.name().toLowerCase()).toUri().toString();
            DatasetWriter.write(kind.createDataFrame(spark, rows).repartition(2), f, path);
            assertEquals(f, DatasetFormat.detect(spark, path));
            paths.add(path);
        }
        for (String path : paths) {
            ValidatedDataset read = DatasetReader.read(spark, path, kind);
            assertEquals(kind.schema(), read.rows().schema(), path);
            List<T> back = new ArrayList<>(collect.apply(read));
            back.sort(Comparator.comparing(id));
            assertEquals(records, back, path);
            assertEquals(records.size(), read.report().rows());
            assertEquals(0, read.report().badRows());
        }
    }

    @Test
    void shippedDatasetsReadWithoutABadRow(@TempDir Path dir) {
        Map<String, Long> rows = Map.of("arithmetic/train.jsonl", 2000L, "arithmetic/heldout.jsonl", 200L,
                "digit-sort/train.jsonl", 1000L, "digit-sort/heldout.jsonl", 200L, "group-preferences/pairs.jsonl", 300L);
        for (String name : ShippedDatasets.NAMES) {
            DatasetKind kind = name.startsWith("group-preferences") ? DatasetKind.PREFERENCES : DatasetKind.PROMPTS;
            ValidationReport report = DatasetReader.read(spark, ShippedDatasets.copyTo(name, dir).toString(), kind).report();
            assertEquals(rows.get(name), report.rows(), name);
            assertEquals(0, report.badRows(), name);
        }
    }

    @Test
    void formatIsDetectedFromThePath(@TempDir Path dir) {
        // Written datasets are detected in roundTrip(); here the names alone, and a path that is not there.
        assertEquals(DatasetFormat.JSONL, DatasetFormat.detect(spark, "s3a://bucket/x/train.jsonl.gz"));
        assertEquals(DatasetFormat.PARQUET, DatasetFormat.detect(spark, "/nowhere/part-0.parquet"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DatasetFormat.detect(spark, dir.resolve("missing").toString()));
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
    }
}
