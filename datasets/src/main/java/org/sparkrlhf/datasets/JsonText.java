package org.sparkrlhf.datasets;

import org.apache.spark.sql.Column;

import static org.apache.spark.sql.functions.*;

/**
 * JSON text typed with the JSON functions that Spark 3.5 and 4.x share (no VARIANT, which 3.5
 * lacks), so that both Spark lines check a dataset alike.
 *
 * <p>A value is read as its JSON text: {@code get_json_object} on the enclosing text wrapped in
 * an array, with a {@code [*]} step. With a wildcard, get_json_object writes its one match as JSON
 * (strings keep their quotes, Hive's behaviour), where a plain path would unquote a string; the
 * quotes are what tell the string "7" from the integer 7. A value's type is then its text's first
 * character. The text is null for JSON null and for an absent key, which {@link #hasKey} tells apart.
 */
public final class JsonText {
    private JsonText() {
    }

    /** Whether the text is exactly one JSON value (of any type), nothing before or after it. */
    public static Column isOneValue(Column text) {
        return coalesce(json_array_length(inArray(text)).equalTo(1), lit(false));
    }

    /** The whole text re-written as JSON, strings quoted; null for JSON null or invalid text. */
    public static Column value(Column text) {
        return nullForJsonNull(get_json_object(inArray(text), "$[*]"));
    }

    /** The JSON text of a top-level key's value in an object's text; null if absent or JSON null. */
    public static Column member(Column objectText, String key) {
        return nullForJsonNull(get_json_object(inArray(objectText), "$[*]" + keyStep(key)));
    }

    /** The JSON text of an array's element at a (0-based) index column; null past the end or for JSON null. */
    public static Column element(Column arrayText, Column index) {
        // get_json_object takes a computed path only through its SQL name.
        return nullForJsonNull(call_function("get_json_object", inArray(arrayText),
                concat(lit("$[*]["), index.cast("string"), lit("]"))));
    }

    /** Whether an object's text has the key (with any value, null included). */
    public static Column hasKey(Column objectText, String key) {
        return coalesce(array_contains(json_object_keys(objectText), key), lit(false));
    }

    /** The string a JSON string's text holds, unquoted and unescaped; null for any other type. */
    public static Column string(Column valueText) {
        return when(isString(valueText), get_json_object(inArray(valueText), "$[0]"));
    }

    public static Column isString(Column valueText) {
        return valueText.startsWith("\"");
    }

    public static Column isInteger(Column valueText) {
        return valueText.rlike("^-?[0-9]+$");
    }

    public static Column isObject(Column valueText) {
        return valueText.startsWith("{");
    }

    public static Column isArray(Column valueText) {
        return valueText.startsWith("[");
    }

    /** How error messages name a value's type: "a string", "an integer", "null", ... */
    public static Column typeName(Column valueText) {
        return when(valueText.isNull(), lit("null"))
                .when(isString(valueText), lit("a string"))
                .when(isInteger(valueText), lit("an integer"))
                .when(isObject(valueText), lit("an object"))
                .when(isArray(valueText), lit("an array"))
                .when(valueText.isin("true", "false"), lit("a boolean"))
                .otherwise(lit("a number"));
    }

    /**
     * get_json_object writes a JSON null that it matched as the text null in some paths (an array
     * element) and as SQL null in others (an object member); a string's text is quoted, so the
     * bare text null is always JSON null.
     */
    private static Column nullForJsonNull(Column valueText) {
        return when(valueText.notEqual("null"), valueText);
    }

    /** A path step for a key, quoted so that any key but one with a quote works. */
    private static String keyStep(String key) {
        if (key.contains("'")) throw new IllegalArgumentException("JSON key " + key + ": quotes in key names are not supported");
        return "['" + key + "']";
    }

    private static Column inArray(Column text) {
        return concat(lit("["), text, lit("]"));
    }
}
