package org.sparkrlhf.jobs.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * One node of a YAML document that remembers where it came from (file, line, dotted key path), so
 * that every error about it can say so. Jackson's tree model drops locations, hence this small
 * tree built from the YAML token stream.
 */
public final class ConfigNode {
    enum Kind { MAP, LIST, SCALAR, NULL }

    private final String file;
    private final String path;
    private final int line;
    private final Kind kind;
    private final Map<String, ConfigNode> entries;
    private final List<ConfigNode> items;
    private final String text;
    private final JsonToken scalarToken;

    private ConfigNode(String file, String path, int line, Kind kind, Map<String, ConfigNode> entries,
                       List<ConfigNode> items, String text, JsonToken scalarToken) {
        this.file = file;
        this.path = path;
        this.line = line;
        this.kind = kind;
        this.entries = entries;
        this.items = items;
        this.text = text;
        this.scalarToken = scalarToken;
    }

    /** Parses one YAML document; {@code file} is the name used in error messages. */
    public static ConfigNode parse(String file, InputStream in) {
        try (JsonParser parser = new YAMLFactory().createParser(in)) {
            JsonToken first = parser.nextToken();
            if (first == null) {
                throw new ConfigException(file + ": the file is empty");
            }
            ConfigNode root = read(file, "", parser);
            if (parser.nextToken() != null) {
                throw new ConfigException(file + ":" + lineOf(parser) + ": only one YAML document is allowed");
            }
            if (root.kind != Kind.MAP) {
                throw new ConfigException(file + ":" + root.line + ": the run config must be a mapping of keys");
            }
            return root;
        } catch (IOException e) {
            throw new ConfigException(file + ": not valid YAML: " + e.getMessage(), e);
        }
    }

    private static int lineOf(JsonParser parser) {
        JsonLocation location = parser.currentTokenLocation();
        return location.getLineNr();
    }

    private static ConfigNode read(String file, String path, JsonParser parser) throws IOException {
        int line = lineOf(parser);
        JsonToken token = parser.currentToken();
        switch (token) {
            case START_OBJECT -> {
                Map<String, ConfigNode> entries = new LinkedHashMap<>();
                while (parser.nextToken() == JsonToken.FIELD_NAME) {
                    String key = parser.currentName();
                    int keyLine = lineOf(parser);
                    String childPath = path.isEmpty() ? key : path + "." + key;
                    if (entries.containsKey(key)) {
                        throw new ConfigException(file + ":" + keyLine + ": " + childPath + ": key given twice");
                    }
                    parser.nextToken();
                    entries.put(key, read(file, childPath, parser));
                }
                return new ConfigNode(file, path, line, Kind.MAP, Collections.unmodifiableMap(entries), null, null, null);
            }
            case START_ARRAY -> {
                List<ConfigNode> items = new ArrayList<>();
                while (parser.nextToken() != JsonToken.END_ARRAY) {
                    items.add(read(file, path + "[" + items.size() + "]", parser));
                }
                return new ConfigNode(file, path, line, Kind.LIST, null, Collections.unmodifiableList(items), null, null);
            }
            case VALUE_NULL -> {
                return new ConfigNode(file, path, line, Kind.NULL, null, null, null, token);
            }
            default -> {
                return new ConfigNode(file, path, line, Kind.SCALAR, null, null, parser.getText(), token);
            }
        }
    }

    public String file() {
        return file;
    }

    public String path() {
        return path;
    }

    public int line() {
        return line;
    }

    /** An error about this node: {@code file:line: path: message}. */
    public ConfigException error(String message) {
        return new ConfigException(file + ":" + line + ": " + (path.isEmpty() ? "" : path + ": ") + message);
    }

    public boolean isMap() {
        return kind == Kind.MAP;
    }

    /** The keys of this mapping, in file order; an error if this is not a mapping. */
    public Set<String> keys() {
        requireMap();
        return entries.keySet();
    }

    /** Rejects every key outside {@code allowed}, naming the first unknown one by its full path. */
    public void allowOnly(String... allowed) {
        requireMap();
        Set<String> known = new TreeSet<>(List.of(allowed));
        for (Map.Entry<String, ConfigNode> e : entries.entrySet()) {
            if (!known.contains(e.getKey())) {
                throw e.getValue().error("unknown key (known keys here: " + String.join(", ", known) + ")");
            }
        }
    }

    public boolean has(String key) {
        requireMap();
        ConfigNode child = entries.get(key);
        return child != null && child.kind != Kind.NULL;
    }

    /** The child under {@code key}, or null when absent or written as null. */
    public ConfigNode get(String key) {
        requireMap();
        ConfigNode child = entries.get(key);
        return child == null || child.kind == Kind.NULL ? null : child;
    }

    /** The child under {@code key}; an error naming the missing key's path when absent. */
    public ConfigNode require(String key) {
        ConfigNode child = get(key);
        if (child == null) {
            String full = path.isEmpty() ? key : path + "." + key;
            throw new ConfigException(file + ":" + line + ": " + full + ": required key is missing");
        }
        return child;
    }

    /** The child mapping under {@code key}, or an empty mapping (so defaults apply) when absent. */
    public ConfigNode section(String key) {
        ConfigNode child = get(key);
        if (child == null) {
            String full = path.isEmpty() ? key : path + "." + key;
            return new ConfigNode(file, full, line, Kind.MAP, Map.of(), null, null, null);
        }
        child.requireMap();
        return child;
    }

    public List<ConfigNode> items() {
        if (kind != Kind.LIST) {
            throw error("expected a list");
        }
        return items;
    }

    public String asString() {
        if (kind != Kind.SCALAR) {
            throw error("expected a single value, not a " + (kind == Kind.MAP ? "mapping" : "list"));
        }
        return text;
    }

    public long asLong() {
        if (kind != Kind.SCALAR || scalarToken != JsonToken.VALUE_NUMBER_INT) {
            throw error("expected a whole number, got '" + describe() + "'");
        }
        return Long.parseLong(text);
    }

    public int asInt() {
        long v = asLong();
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw error("number out of range: " + v);
        }
        return (int) v;
    }

    public double asDouble() {
        if (kind != Kind.SCALAR || (scalarToken != JsonToken.VALUE_NUMBER_INT && scalarToken != JsonToken.VALUE_NUMBER_FLOAT)) {
            throw error("expected a number, got '" + describe() + "'");
        }
        return Double.parseDouble(text);
    }

    public boolean asBoolean() {
        if (kind != Kind.SCALAR || (scalarToken != JsonToken.VALUE_TRUE && scalarToken != JsonToken.VALUE_FALSE)) {
            throw error("expected true or false, got '" + describe() + "'");
        }
        return scalarToken == JsonToken.VALUE_TRUE;
    }

    private String describe() {
        return switch (kind) {
            case SCALAR -> text;
            case MAP -> "a mapping";
            case LIST -> "a list";
            case NULL -> "null";
        };
    }

    private void requireMap() {
        if (kind != Kind.MAP) {
            throw error("expected a mapping of keys, got " + (kind == Kind.LIST ? "a list" : "'" + describe() + "'"));
        }
    }

    // Typed reads with defaults, used section by section by RunConfigReader.

    public String string(String key, String fallback) {
        ConfigNode n = get(key);
        return n == null ? fallback : n.asString();
    }

    public int integer(String key, int fallback) {
        ConfigNode n = get(key);
        return n == null ? fallback : n.asInt();
    }

    public long longValue(String key, long fallback) {
        ConfigNode n = get(key);
        return n == null ? fallback : n.asLong();
    }

    public double number(String key, double fallback) {
        ConfigNode n = get(key);
        return n == null ? fallback : n.asDouble();
    }

    public boolean bool(String key, boolean fallback) {
        ConfigNode n = get(key);
        return n == null ? fallback : n.asBoolean();
    }
}
