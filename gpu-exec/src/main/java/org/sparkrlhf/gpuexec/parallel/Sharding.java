package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Cutting a model's Hugging Face tensors into one rank's shard and putting shards back together,
 * with the planner's convention (ShardLayout, ModelParameters): q/k/v_proj weights and biases,
 * gate_proj and up_proj (weights and biases) are split by rows (output features), o_proj and
 * down_proj weights by columns (input features), embed_tokens and lm_head by vocabulary rows; norms,
 * score.weight and the o_proj / down_proj biases (added once, after the all-reduce) are replicated.
 */
public final class Sharding {
    private Sharding() {
    }

    /** How a tensor is split over the tensor-parallel ranks of a stage. */
    public enum Split { ROWS, COLUMNS, VOCAB_ROWS, REPLICATED }

    /** The split of a parameter, by its Hugging Face name. */
    public static Split split(String name) {
        if (name.equals("model.embed_tokens.weight") || name.equals("lm_head.weight")) return Split.VOCAB_ROWS;
        if (name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight")) return Split.COLUMNS;
        if (name.contains("q_proj.") || name.contains("k_proj.") || name.contains("v_proj.")
                || name.contains("gate_proj.") || name.contains("up_proj.")) return Split.ROWS;
        return Split.REPLICATED;
    }

    /** The decoder layer of a parameter, -1 for the embedding, Integer.MAX_VALUE for the final norm and head. */
    public static int layerOf(String name) {
        if (name.startsWith("model.layers.")) {
            int dot = name.indexOf('.', "model.layers.".length());
            return Integer.parseInt(name.substring("model.layers.".length(), dot));
        }
        if (name.equals("model.embed_tokens.weight")) return -1;
        return Integer.MAX_VALUE;
    }

    /** Whether a shard holds (a part of) a parameter. */
    public static boolean holds(ModelConfig c, ShardSpec s, String name) {
        int layer = layerOf(name);
        if (layer == -1) return s.holdsEmbedding(c);
        if (layer == Integer.MAX_VALUE) return s.lastStage();
        return layer >= s.firstLayer(c.numLayers()) && layer < s.endLayer(c.numLayers());
    }

    /** The shape of a shard's part of a tensor of the full shape. */
    public static int[] shardShape(String name, int[] fullShape, ShardSpec s) {
        int[] shape = fullShape.clone();
        switch (split(name)) {
            case ROWS, VOCAB_ROWS -> shape[0] = s.partEnd(fullShape[0]) - s.partStart(fullShape[0]);
            case COLUMNS -> shape[1] = s.partEnd(fullShape[1]) - s.partStart(fullShape[1]);
            case REPLICATED -> { }
        }
        return shape;
    }

    /** The parameters a shard holds, in Hugging Face order, with their shard shapes. */
    public static List<LlamaWeights.Spec> specs(ModelConfig c, ShardSpec s) {
        List<LlamaWeights.Spec> out = new ArrayList<>();
        for (LlamaWeights.Spec full : LlamaWeights.specs(c)) {
            if (holds(c, s, full.name())) out.add(new LlamaWeights.Spec(full.name(), shardShape(full.name(), full.shape(), s)));
        }
        return out;
    }

    private static int rows(int[] shape) {
        return shape[0];
    }

    private static int cols(int[] shape) {
        return shape.length == 1 ? 1 : shape[1];
    }

    /** Cuts one full tensor (row-major, of fullShape) into shard s's part. */
    public static float[] slice(String name, int[] fullShape, float[] full, ShardSpec s) {
        int R = rows(fullShape), C = cols(fullShape);
        if (full.length != R * C) {
            throw new IllegalArgumentException(name + ": " + full.length + " values for shape " + java.util.Arrays.toString(fullShape));
        }
        return switch (split(name)) {
            case REPLICATED -> full.clone();
            case ROWS, VOCAB_ROWS -> java.util.Arrays.copyOfRange(full, s.partStart(R) * C, s.partEnd(R) * C);
            case COLUMNS -> {
                int c0 = s.partStart(C), c1 = s.partEnd(C), w = c1 - c0;
                float[] part = new float[R * w];
                for (int r = 0; r < R; r++) System.arraycopy(full, r * C + c0, part, r * w, w);
                yield part;
            }
        };
    }

    /** A shard's tensors cut from the full tensors of a model (Hugging Face names; lm_head absent when tied). */
    public static Map<String, float[]> shard(ModelConfig c, Map<String, float[]> full, ShardSpec s) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (LlamaWeights.Spec spec : LlamaWeights.specs(c)) {
            if (!holds(c, s, spec.name())) continue;
            float[] v = full.get(spec.name());
            if (v == null) throw new IllegalArgumentException("the full tensors have no '" + spec.name() + "'");
            out.put(spec.name(), slice(spec.name(), spec.shape(), v, s));
        }
        return out;
    }

    /**
     * The full tensors put back together from shards that cover the model: each tensor from the
     * lowest stage holding it (stage 0's embedding, not the tied copy), its tp parts in rank order
     * (replicated tensors from tensor rank 0).
     */
    public static Map<String, float[]> gather(ModelConfig c, List<ShardSpec> specs, List<Map<String, float[]>> shards) {
        if (specs.size() != shards.size()) throw new IllegalArgumentException(specs.size() + " shard specs for " + shards.size() + " shards");
        Map<String, float[]> out = new LinkedHashMap<>();
        for (LlamaWeights.Spec spec : LlamaWeights.specs(c)) {
            String name = spec.name();
            int R = rows(spec.shape()), C = cols(spec.shape());
            float[] full = new float[R * C];
            Split split = split(name);
            int tp = -1;
            for (ShardSpec s : specs) {
                if (tp != -1 && s.tp() != tp) throw new IllegalArgumentException("shards of different tp sizes: " + tp + " and " + s.tp());
                tp = s.tp();
            }
            int parts = split == Split.REPLICATED ? 1 : tp;
            for (int t = 0; t < parts; t++) {
                float[] part = null;
                ShardSpec from = null;
                for (int i = 0; i < specs.size(); i++) {
                    ShardSpec s = specs.get(i);
                    if (s.tpRank() != t || !holds(c, s, name)) continue;
                    if (from == null || s.stage() < from.stage()) {
                        from = s;
                        part = shards.get(i).get(name);
                    }
                }
                if (part == null) throw new IllegalArgumentException("no shard holds tensor rank " + t + "'s part of '" + name + "'");
                switch (split) {
                    case REPLICATED -> System.arraycopy(part, 0, full, 0, full.length);
                    case ROWS, VOCAB_ROWS -> System.arraycopy(part, 0, full, from.partStart(R) * C, part.length);
                    case COLUMNS -> {
                        int c0 = from.partStart(C), w = from.partEnd(C) - c0;
                        for (int r = 0; r < R; r++) System.arraycopy(part, r * w, full, r * C + c0, w);
                    }
                }
            }
            out.put(name, full);
        }
        return out;
    }

    /** The values of every tensor of a table, by name. */
    public static Map<String, float[]> download(Backend backend, Map<String, Tensor> tensors) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) out.put(e.getKey(), backend.download(e.getValue()));
        return out;
    }
}
