package org.sparkrlhf.planner.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The scenario of {@code spark-rlhf plan}: from flags ({@code --gpus-per-node 8}) or a YAML file with the
 * same keys ({@code gpus_per_node: 8}); flags override the file.
 */
final class PlanOptions {
    /** Keys with a value, as YAML spells them; the flag is the same with dashes. */
    static final List<String> VALUE_KEYS = List.of("algorithm", "actor", "critic", "ref", "reward", "nodes",
            "gpus_per_node", "gpu", "gpu_memory_gib", "prompt_len", "gen_len", "batch_tokens", "ppo_minibatches",
            "search_seconds", "search_steps", "seed", "baseline", "timeline", "profile", "evaluate");
    static final List<String> FLAG_KEYS = List.of("json", "zero3");

    String algorithm = "ppo";
    String actor = "llama2-7b";
    String critic;
    String ref;
    String reward;
    int nodes = 1;
    int gpusPerNode = 8;
    String gpu = "h100";
    Double gpuMemoryGib;
    int promptLen = 128;
    int genLen = 896;
    long batchTokens = 1L << 17;
    int ppoMinibatches = 4;
    double searchSeconds = 20;
    Long searchSteps;
    long seed = 1;
    String baseline;
    boolean json;
    boolean zero3;
    String timeline;
    final List<String> profiles = new ArrayList<>();
    String evaluate;

    /** Parses flags; {@code --config FILE} is read first, wherever it appears, then the other flags apply. */
    static PlanOptions parse(String[] args) {
        Map<String, List<String>> given = new LinkedHashMap<>();
        String config = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument '" + a + "'");
            }
            String key = a.substring(2).replace('-', '_');
            String inline = null;
            int eq = key.indexOf('=');
            if (eq >= 0) {
                inline = key.substring(eq + 1);
                key = key.substring(0, eq);
            }
            if (FLAG_KEYS.contains(key)) {
                given.computeIfAbsent(key, k -> new ArrayList<>()).add("true");
                continue;
            }
            if (!key.equals("config") && !VALUE_KEYS.contains(key)) {
                throw new IllegalArgumentException("unknown option '" + a + "'");
            }
            String value = inline;
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("option '" + a + "' needs a value");
                }
                value = args[++i];
            }
            if (key.equals("config")) {
                config = value;
            } else {
                given.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
            }
        }
        PlanOptions o = new PlanOptions();
        if (config != null) {
            o.applyYaml(Path.of(config));
        }
        for (Map.Entry<String, List<String>> e : given.entrySet()) {
            for (String v : e.getValue()) {
                o.set(e.getKey(), v, "option --" + e.getKey().replace('_', '-'));
            }
        }
        return o;
    }

    void applyYaml(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper(new YAMLFactory()).readTree(file.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read YAML: " + e.getMessage(), e);
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            return;
        }
        if (!root.isObject()) {
            throw new IllegalArgumentException(file + ": expected a mapping of keys to values");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = e.getKey().replace('-', '_');
            String where = file + ": key '" + e.getKey() + "'";
            JsonNode v = e.getValue();
            if (FLAG_KEYS.contains(key)) {
                if (!v.isBoolean()) {
                    throw new IllegalArgumentException(where + ": expected true or false");
                }
                set(key, Boolean.toString(v.asBoolean()), where);
            } else if (VALUE_KEYS.contains(key)) {
                if (v.isArray() && key.equals("profile")) {
                    for (JsonNode x : v) {
                        set(key, x.asText(), where);
                    }
                } else if (v.isValueNode() && !v.isNull()) {
                    set(key, v.asText(), where);
                } else {
                    throw new IllegalArgumentException(where + ": expected a single value");
                }
            } else {
                throw new IllegalArgumentException(where + ": unknown key; known keys: " + VALUE_KEYS + " and " + FLAG_KEYS);
            }
        }
    }

    private void set(String key, String v, String where) {
        switch (key) {
            case "algorithm" -> algorithm = v;
            case "actor" -> actor = v;
            case "critic" -> critic = v;
            case "ref" -> ref = v;
            case "reward" -> reward = v;
            case "nodes" -> nodes = intValue(v, where, 1);
            case "gpus_per_node" -> gpusPerNode = intValue(v, where, 1);
            case "gpu" -> gpu = v;
            case "gpu_memory_gib" -> gpuMemoryGib = doubleValue(v, where);
            case "prompt_len" -> promptLen = intValue(v, where, 1);
            case "gen_len" -> genLen = intValue(v, where, 0);
            case "batch_tokens" -> batchTokens = longValue(v, where);
            case "ppo_minibatches" -> ppoMinibatches = intValue(v, where, 1);
            case "search_seconds" -> searchSeconds = doubleValue(v, where);
            case "search_steps" -> searchSteps = longValue(v, where);
            case "seed" -> seed = longValue(v, where);
            case "baseline" -> {
                if (!v.equals("symmetric") && !v.equals("colocated")) {
                    throw new IllegalArgumentException(where + ": expected symmetric or colocated, got '" + v + "'");
                }
                baseline = v;
            }
            case "json" -> json = Boolean.parseBoolean(v);
            case "zero3" -> zero3 = Boolean.parseBoolean(v);
            case "timeline" -> timeline = v;
            case "profile" -> profiles.add(v);
            case "evaluate" -> evaluate = v;
            default -> throw new IllegalArgumentException(where + ": unknown key");
        }
    }

    private static int intValue(String v, String where, int min) {
        try {
            int x = Integer.parseInt(v.trim());
            if (x < min) {
                throw new IllegalArgumentException(where + ": must be >= " + min + ", got " + x);
            }
            return x;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(where + ": expected an integer, got '" + v + "'");
        }
    }

    private static long longValue(String v, String where) {
        try {
            long x = Long.parseLong(v.trim());
            if (x < 0) {
                throw new IllegalArgumentException(where + ": must be >= 0, got " + x);
            }
            return x;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(where + ": expected an integer, got '" + v + "'");
        }
    }

    private static double doubleValue(String v, String where) {
        try {
            double x = Double.parseDouble(v.trim());
            if (!(x > 0) || Double.isInfinite(x)) {
                throw new IllegalArgumentException(where + ": must be a positive number, got " + v);
            }
            return x;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(where + ": expected a number, got '" + v + "'");
        }
    }
}
