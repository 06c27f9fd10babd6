package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** JSON values typed from their text: a string that looks like another type stays a string. */
@Tag("spark-data")
class JsonTextTest {
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = TestSpark.session();
    }

    /** One column over the given texts, one row each, in order. */
    private static List<String> eval(List<String> texts, Column f) {
        List<String> out = new ArrayList<>();
        for (Row r : spark.createDataset(texts, Encoders.STRING()).toDF("t").select(f.cast("string")).collectAsList()) {
            out.add(r.getString(0));
        }
        return out;
    }

    @Test
    void aMembersTypeComesFromItsJsonTextWithAStringsQuotes() {
        List<String> objects = List.of(
                "{\"v\": \"7\"}", "{\"v\": 7}", "{\"v\": -3}", "{\"v\": 1.5}", "{\"v\": 1e3}", "{\"v\": true}",
                "{\"v\": null}", "{\"v\": {\"a\": \"b\"}}", "{\"v\": [1, \"x\"]}", "{\"v\": \"[1]\"}", "{\"w\": 1}");
        Column member = JsonText.member(col("t"), "v");
        assertEquals(Arrays.asList("a string", "an integer", "an integer", "a number", "a number", "a boolean",
                        "null", "an object", "an array", "a string", "null"),
                eval(objects, JsonText.typeName(member)));
        assertEquals(Arrays.asList("7", null, null, null, null, null, null, null, null, "[1]", null),
                eval(objects, JsonText.string(member)));
        assertEquals(Arrays.asList("true", "true", "true", "true", "true", "true", "true", "true", "true", "true", "false"),
                eval(objects, JsonText.hasKey(col("t"), "v")));
    }

    @Test
    void aTextIsOneValueOnlyWithNothingAfterIt() {
        List<String> texts = List.of("{}", "[1, 2]", "\"s\"", "42", "{\"a\": 1} x", "{\"a\": 1}, {\"b\": 2}",
                "{\"a\": ", "", "  ");
        assertEquals(Arrays.asList("true", "true", "true", "true", "false", "false", "false", "false", "false"),
                eval(texts, JsonText.isOneValue(col("t"))));
    }

    @Test
    void anArraysElementsAreTypedByIndex() {
        List<String> arrays = List.of("[\"a\", 5, {\"role\": \"user\"}, null]");
        List<String> types = new ArrayList<>();
        for (int i = 0; i < 5; i++) types.add(eval(arrays, JsonText.typeName(JsonText.element(col("t"), lit(i)))).get(0));
        // Past the end is absent, which reads as null like a JSON null.
        assertEquals(List.of("a string", "an integer", "an object", "null", "null"), types);
    }
}
