package org.sparkrlhf.datasets;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** Bad rows of Parquet and Delta sources are reported with path, row index and field; nothing is written. */
@Tag("spark-data")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class TableValidationTest {
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
    }

    static List<Row> badPreferenceRows() {
        Row m = RowFactory.create("user", "hello");
        return List.of(
                RowFactory.create(1L, "a prompt", null, "good", "bad", "g1"),             // row 0: fine
                RowFactory.create(2L, "a prompt", null, "", "bad", null),                 // row 1: empty chosen
                RowFactory.create(3L, null, null, "good", "bad", null),                   // row 2: no prompt
                RowFactory.create(4L, "p", null, "good", null, null),                     // row 3: rejected missing
                RowFactory.create(5L, null, List.of(m, RowFactory.create(null, " ")), "x", "y", "g2"), // row 4
                RowFactory.create(6L, "p", List.of(m), "x", "y", " "),                    // row 5: both; blank group
                RowFactory.create(null, "p", null, "x", "y", null));                       // row 6: fine, derived id
    }

    static StructType preferenceSchema() {
        return new StructType()
                .add("pair_id", DataTypes.LongType)
                .add("question", DataTypes.StringType)
                .add("messages", DataTypes.createArrayType(new StructType()
                        .add("role", DataTypes.StringType).add("content", DataTypes.StringType)
                        .add("name", DataTypes.StringType)))
                .add("chosen", DataTypes.StringType)
                .add("rejected", DataTypes.StringType)
                .add("group", DataTypes.StringType);
    }

    static final List<String> EXPECTED = List.of(
            "row index 1: field 'chosen': empty text",
            "row index 2: field 'question' (prompt) (or 'messages'): missing",
            "row index 3: field 'rejected': missing",
            "row index 4: field 'messages[1].role': missing; field 'messages[1].content': empty text",
            "row index 5: field 'group': empty text; fields 'question' (prompt) and 'messages' are both given; "
                    + "a row has one or the other");

    @Test
    void parquetAndDeltaBadRowsAreReportedWithPathRowIndexAndField(@TempDir Path dir) throws Exception {
        List<Row> rows = new ArrayList<>();
        for (Row r : badPreferenceRows()) {
            // The source schema has an extra struct field 'name' in messages, which is read past.
            @SuppressWarnings("unchecked")
            List<Row> msgs = r.isNullAt(2) ? null : ((List<Row>) r.get(2)).stream()
                    .map(x -> RowFactory.create(x.get(0), x.get(1), null)).toList();
            rows.add(RowFactory.create(r.get(0), r.get(1), msgs, r.get(3), r.get(4), r.get(5)));
        }
        Dataset<Row> df = spark.createDataFrame(rows, preferenceSchema()).coalesce(1);
        ReadOptions options = ReadOptions.defaults().withColumn("id", "pair_id").withColumn("prompt", "question");
        for (DatasetFormat format : List.of(DatasetFormat.PARQUET, DatasetFormat.DELTA)) {
            Path source = dir.resolve(format.name().toLowerCase());
            DatasetWriter.write(df, format, source.toString());
            String dataFile;
            try (Stream<Path> files = Files.list(source)) {
                dataFile = files.filter(p -> p.getFileName().toString().endsWith(".parquet")).findFirst().orElseThrow()
                        .toUri().toString().replace("file:///", "file:/");
            }
            Path out = dir.resolve("out-" + format);
            InvalidDatasetException e = assertThrows(InvalidDatasetException.class, () -> DatasetImport.run(spark,
                    "--kind", "preferences", "--in", source.toString(), "--column", "id=pair_id",
                    "--column", "prompt=question", "--out", out.toString()));
            List<String> expected = EXPECTED.stream().map(s -> dataFile + ", " + s).toList();
            assertEquals(expected, e.report().orElseThrow().firstErrors(), format.toString());
            assertEquals(7, e.report().orElseThrow().rows());
            assertFalse(Files.exists(out), "nothing is written when validation fails");

            ValidatedDataset read = DatasetReader.read(spark, source.toString(), DatasetKind.PREFERENCES,
                    options.withSkipBadRows(true));
            assertEquals(5, read.report().badRows());
            List<PreferenceRow> good = read.collectPreferences();
            assertEquals(2, good.size());
            assertEquals(new PreferenceRow("1", "a prompt", null, "good", "bad", "g1"), good.get(0));
            assertEquals(DerivedIds.expected(List.of("p", "x", "y")), good.get(1).id());
        }
    }

    @Test
    void aColumnOfTheWrongTypeOrAMissingColumnIsReportedBeforeAnyRowIsRead(@TempDir Path dir) {
        Path source = dir.resolve("wrong.parquet");
        spark.sql("SELECT 1 AS id, 5 AS prompt, 'x' AS other").write().parquet(source.toString());
        InvalidDatasetException e = assertThrows(InvalidDatasetException.class,
                () -> DatasetReader.read(spark, source.toString(), DatasetKind.SFT));
        assertTrue(e.getMessage().contains("column 'prompt' (field 'prompt') has type int; expected string"), e.getMessage());
        assertTrue(e.getMessage().contains("no column 'answer' for field 'answer'"), e.getMessage());
        assertTrue(e.getMessage().startsWith(source.toString()), e.getMessage());
        assertTrue(e.report().isEmpty());
    }

    @Test
    void positionsAreTheFilesOwnWhenFilesAreSplitAndPacked(@TempDir Path dir) throws Exception {
        // Small splits: one JSONL file is read as many splits, several small files share a split.
        List<String> big = new ArrayList<>();
        for (int i = 1; i <= 300; i++) {
            big.add(i == 3 || i == 171 || i == 299 ? "{\"id\": \"" + i + "\", \"prompt\": \"\"}"
                    : "{\"id\": \"" + i + "\", \"prompt\": \"question number " + i + "\"}");
        }
        Path data = dir.resolve("data");
        Files.createDirectories(data);
        Files.write(data.resolve("a.jsonl"), big);
        Files.write(data.resolve("b.jsonl"), List.of("{\"id\": \"b1\", \"prompt\": \"ok\"}", "", "{\"id\": \"b2\"}"));
        Files.write(data.resolve("c.jsonl"), List.of("{\"id\": \"c1\", \"prompt\": 1}"));
        spark.conf().set("spark.sql.files.maxPartitionBytes", "700");
        spark.conf().set("spark.sql.files.openCostInBytes", "1");
        try {
            InvalidDatasetException e = assertThrows(InvalidDatasetException.class,
                    () -> DatasetReader.read(spark, data.toString(), DatasetKind.PROMPTS));
            String base = data.toUri().toString().replace("file:///", "file:/");
            assertEquals(List.of(
                    base + "a.jsonl, line 3: field 'prompt': empty text",
                    base + "a.jsonl, line 171: field 'prompt': empty text",
                    base + "a.jsonl, line 299: field 'prompt': empty text",
                    base + "b.jsonl, line 3: field 'prompt' (or 'messages'): missing",
                    base + "c.jsonl, line 1: field 'prompt': expected a string, got an integer"),
                    e.report().orElseThrow().firstErrors());
            assertTrue(spark.read().text(data.resolve("a.jsonl").toString()).rdd().getNumPartitions() > 10);

            Path pq = dir.resolve("pq");
            spark.createDataFrame(big.stream().map(s -> RowFactory.create(s.replaceAll(".*\"id\": \"(\\d+)\".*", "$1"),
                                    s.contains("\"prompt\": \"\"") ? "" : "q")).toList(),
                            new StructType().add("id", DataTypes.StringType).add("prompt", DataTypes.StringType))
                    .coalesce(1).write().option("parquet.block.size", 512).parquet(pq.toString());
            assertTrue(spark.read().parquet(pq.toString()).rdd().getNumPartitions() > 1);
            List<String> errors = assertThrows(InvalidDatasetException.class,
                    () -> DatasetReader.read(spark, pq.toString(), DatasetKind.PROMPTS)).report().orElseThrow().firstErrors();
            assertEquals(List.of("row index 2", "row index 170", "row index 298"),
                    errors.stream().map(s -> s.replaceAll(".*, (row index \\d+):.*", "$1")).toList());
        } finally {
            spark.conf().unset("spark.sql.files.maxPartitionBytes");
            spark.conf().unset("spark.sql.files.openCostInBytes");
        }
    }

    /** The id a row without one gets: the first 16 hex digits of SHA-256 over its fields joined by U+001F. */
    static final class DerivedIds {
        static String expected(List<String> fields) throws Exception {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(String.join("\u001f", fields).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            StringBuilder b = new StringBuilder();
            for (byte x : Arrays.copyOf(d, 8)) b.append(String.format("%02x", x));
            return b.toString();
        }
    }
}
