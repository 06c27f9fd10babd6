package org.sparkrlhf.planner.plan;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * Plans as JSON. One object:
 * <pre>
 * {"algorithm": "ppo",
 *  "cluster": {"nodes": 2, "gpus_per_node": 8, "gpu": "h100"},
 *  "iteration_seconds": 17.2,
 *  "calls": [{"name": "actor_gen", "role": "actor", "kind": "GENERATE", "model": "llama2-7b",
 *             "gpus": [0, 1, ...], "dp": 2, "tp": 4, "pp": 1, "micro_batches": 1, "zero3": false,
 *             "seconds": 11.3, "memory_bytes": 5.6e10, "realloc_seconds": 0.06}, ...],
 *  "baselines": {"symmetric": 20.0, "colocated": null},
 *  "search_seconds": 20.0}
 * </pre>
 * {@code gpus} are global device indices (node * gpus_per_node + local index) and must form a valid
 * mesh. Reading needs only {@code calls[].name, gpus, dp, tp, pp} ({@code micro_batches} defaults to 1,
 * {@code zero3} to false); estimates are outputs and are ignored when read.
 */
public final class PlanJson {
    private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private PlanJson() {
    }

    /** Per-call figures written next to the placement; null entries are left out. */
    public record CallFigures(String role, String kind, String model, double seconds, double memoryBytes,
                              double reallocSeconds) {
    }

    public static ObjectNode toJson(ExecutionPlan plan, ClusterSpec cluster, Double iterationSeconds,
                                    List<CallFigures> figures, Double symmetricSeconds, Double colocatedSeconds,
                                    Double searchSeconds) {
        ObjectNode root = MAPPER.createObjectNode();
        root.put("algorithm", plan.algorithm());
        ObjectNode c = root.putObject("cluster");
        c.put("nodes", cluster.nodes());
        c.put("gpus_per_node", cluster.gpusPerNode());
        c.put("gpu", cluster.gpu().name());
        c.put("gpu_memory_bytes", cluster.gpu().memoryBytes());
        putNumber(root, "iteration_seconds", iterationSeconds);
        ArrayNode calls = root.putArray("calls");
        for (int i = 0; i < plan.placements().size(); i++) {
            CallPlacement p = plan.placements().get(i);
            ObjectNode o = calls.addObject();
            o.put("name", p.call());
            CallFigures f = figures == null ? null : figures.get(i);
            if (f != null) {
                o.put("role", f.role());
                o.put("kind", f.kind());
                o.put("model", f.model());
            }
            ArrayNode g = o.putArray("gpus");
            for (int x : p.mesh().gpus()) {
                g.add(x);
            }
            ParallelStrategy s = p.strategy();
            o.put("dp", s.dp());
            o.put("tp", s.tp());
            o.put("pp", s.pp());
            o.put("micro_batches", s.microBatches());
            o.put("zero3", s.zero3());
            if (f != null) {
                o.put("seconds", f.seconds());
                o.put("memory_bytes", f.memoryBytes());
                o.put("realloc_seconds", f.reallocSeconds());
            }
        }
        ObjectNode b = root.putObject("baselines");
        putNumber(b, "symmetric", symmetricSeconds);
        putNumber(b, "colocated", colocatedSeconds);
        putNumber(root, "search_seconds", searchSeconds);
        return root;
    }

    private static void putNumber(ObjectNode o, String field, Double v) {
        if (v == null || !Double.isFinite(v)) {
            o.putNull(field);
        } else {
            o.put(field, v);
        }
    }

    public static String write(ObjectNode json) {
        try {
            return MAPPER.writeValueAsString(json);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    public static String write(ExecutionPlan plan, ClusterSpec cluster) {
        return write(toJson(plan, cluster, null, null, null, null, null));
    }

    /**
     * Reads a plan for {@code graph} on {@code cluster}; {@code source} names the input in errors. Every
     * call of the graph must be placed exactly once, on a valid mesh, with dp*tp*pp = its devices, and
     * a call's {@code role}, when given, must be the graph's. With {@code cluster} null (the devices not
     * known yet) every check but the meshes' fit to the cluster is made, so that a runtime can refuse a
     * bad file before it looks for its devices, and check the meshes once it has found them.
     */
    public static ExecutionPlan read(String json, DataflowGraph graph, ClusterSpec cluster, String source) {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(source + ": not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr()), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(source + ": expected a JSON object");
        }
        JsonNode calls = root.get("calls");
        if (calls == null || !calls.isArray()) {
            throw new IllegalArgumentException(source + ": missing array 'calls'");
        }
        if (root.has("algorithm") && !root.get("algorithm").asText().equals(graph.algorithm())) {
            throw new IllegalArgumentException(source + ": field 'algorithm' is '" + root.get("algorithm").asText()
                    + "', expected '" + graph.algorithm() + "'");
        }
        CallPlacement[] placed = new CallPlacement[graph.size()];
        for (int i = 0; i < calls.size(); i++) {
            JsonNode c = calls.get(i);
            String where = source + ": calls[" + i + "]";
            if (!c.isObject()) {
                throw new IllegalArgumentException(where + ": expected an object");
            }
            String name = text(c, "name", where);
            int idx;
            try {
                idx = graph.indexOf(name);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": field 'name': " + e.getMessage());
            }
            where = source + ": call '" + name + "'";
            if (placed[idx] != null) {
                throw new IllegalArgumentException(where + " is placed twice");
            }
            String role = graph.call(idx).role();
            if (c.has("role") && !c.get("role").asText().equals(role)) {
                throw new IllegalArgumentException(where + ": field 'role' is '" + c.get("role").asText() + "', but "
                        + graph.algorithm() + " runs " + name + " on model '" + role + "'");
            }
            JsonNode gpus = c.get("gpus");
            if (gpus == null || !gpus.isArray() || gpus.isEmpty()) {
                throw new IllegalArgumentException(where + ": field 'gpus' must be a non-empty array of device indices");
            }
            int first = gpus.get(0).asInt(-1);
            for (int k = 0; k < gpus.size(); k++) {
                if (!gpus.get(k).isIntegralNumber() || gpus.get(k).asInt() != first + k) {
                    throw new IllegalArgumentException(where + ": field 'gpus' must list consecutive device indices, got "
                            + gpus);
                }
            }
            DeviceMesh mesh = new DeviceMesh(Math.max(first, 0), gpus.size());
            String why = first < 0 ? "device indices must be >= 0" : cluster == null ? null : mesh.invalidReason(cluster);
            if (why != null) {
                throw new IllegalArgumentException(where + ": field 'gpus': " + why);
            }
            int dp = positive(c, "dp", where, null);
            int tp = positive(c, "tp", where, null);
            int pp = positive(c, "pp", where, null);
            int mb = positive(c, "micro_batches", where, 1);
            boolean zero3 = c.path("zero3").asBoolean(false);
            ParallelStrategy s;
            try {
                s = new ParallelStrategy(dp, tp, pp, mb, zero3);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage());
            }
            if (s.size() != mesh.size()) {
                throw new IllegalArgumentException(where + ": dp*tp*pp = " + s.size() + " but 'gpus' lists "
                        + mesh.size() + " devices");
            }
            placed[idx] = new CallPlacement(name, mesh, s);
        }
        List<CallPlacement> out = new ArrayList<>();
        for (int i = 0; i < placed.length; i++) {
            if (placed[i] == null) {
                ModelCall c = graph.call(i);
                throw new IllegalArgumentException(source + ": call '" + c.name() + "' of " + graph.algorithm()
                        + " is not placed");
            }
            out.add(placed[i]);
        }
        return new ExecutionPlan(graph.algorithm(), out);
    }

    private static String text(JsonNode o, String field, String where) {
        JsonNode v = o.get(field);
        if (v == null || !v.isTextual()) {
            throw new IllegalArgumentException(where + ": missing text field '" + field + "'");
        }
        return v.asText();
    }

    private static int positive(JsonNode o, String field, String where, Integer dflt) {
        JsonNode v = o.get(field);
        if (v == null || v.isNull()) {
            if (dflt != null) {
                return dflt;
            }
            throw new IllegalArgumentException(where + ": missing field '" + field + "'");
        }
        if (!v.isIntegralNumber() || v.asInt() < 1) {
            throw new IllegalArgumentException(where + ": field '" + field + "' must be a positive integer, got " + v);
        }
        return v.asInt();
    }
}
