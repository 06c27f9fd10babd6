package org.sparkrlhf.planner.spec;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The shape of a LLaMA-family decoder: what the planner needs to count parameters, FLOPs and bytes.
 * A value head ({@code valueHead}) replaces the language-model head by a [1, hidden] projection, as
 * critics and reward models have ({@code score.weight} in HF's ...ForSequenceClassification).
 */
public record ModelSpec(String name, int layers, int hidden, int intermediate, int heads, int kvHeads, int headDim,
                        int vocab, boolean tieEmbeddings, boolean attentionBias, boolean valueHead) {
    public ModelSpec {
        if (layers < 1 || hidden < 1 || intermediate < 1 || heads < 1 || kvHeads < 1 || headDim < 1 || vocab < 1) {
            throw new IllegalArgumentException("model " + name + ": every dimension must be positive");
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("model " + name + ": " + heads + " attention heads are not a multiple of "
                    + kvHeads + " key/value heads");
        }
    }

    public static ModelSpec llama(String name, int layers, int hidden, int intermediate, int heads, int kvHeads, int vocab) {
        return new ModelSpec(name, layers, hidden, intermediate, heads, kvHeads, hidden / heads, vocab, false, false, false);
    }

    public static final List<String> PRESETS = List.of("llama2-7b", "llama2-13b", "codellama-34b", "llama2-70b");

    /** The LLaMA-2 family as published on the Hugging Face hub (config.json of each checkpoint). */
    public static ModelSpec preset(String name) {
        return switch (name) {
            case "llama2-7b" -> llama(name, 32, 4096, 11008, 32, 32, 32000);
            case "llama2-13b" -> llama(name, 40, 5120, 13824, 40, 40, 32000);
            case "codellama-34b" -> llama(name, 48, 8192, 22016, 64, 8, 32000);
            case "llama2-70b" -> llama(name, 80, 8192, 28672, 64, 8, 32000);
            default -> throw new IllegalArgumentException("unknown model '" + name + "'; known presets: " + PRESETS
                    + ", or a path to an HF config.json (or its directory)");
        };
    }

    /** A preset name, or a path to a Hugging Face {@code config.json} or to the directory holding one. */
    public static ModelSpec resolve(String nameOrPath) {
        if (PRESETS.contains(nameOrPath)) {
            return preset(nameOrPath);
        }
        Path p = Path.of(nameOrPath);
        if (Files.isDirectory(p)) {
            p = p.resolve("config.json");
        }
        if (Files.isRegularFile(p)) {
            return fromHfConfig(p);
        }
        return preset(nameOrPath);
    }

    /** Reads an HF {@code config.json} (LLaMA, Mistral, Qwen2 and other LLaMA-shaped decoders). */
    public static ModelSpec fromHfConfig(Path configJson) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(configJson.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(configJson + ": not readable as JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(configJson + ": expected a JSON object");
        }
        int layers = requiredInt(root, "num_hidden_layers", configJson);
        int hidden = requiredInt(root, "hidden_size", configJson);
        int inter = requiredInt(root, "intermediate_size", configJson);
        int heads = requiredInt(root, "num_attention_heads", configJson);
        int kv = root.has("num_key_value_heads") && !root.get("num_key_value_heads").isNull()
                ? requiredInt(root, "num_key_value_heads", configJson) : heads;
        int vocab = requiredInt(root, "vocab_size", configJson);
        int headDim = root.has("head_dim") && !root.get("head_dim").isNull()
                ? requiredInt(root, "head_dim", configJson) : hidden / heads;
        if (!root.has("head_dim") && hidden % heads != 0) {
            throw new IllegalArgumentException(configJson + ": hidden_size " + hidden + " is not a multiple of num_attention_heads "
                    + heads + " and no head_dim is given");
        }
        boolean tie = root.path("tie_word_embeddings").asBoolean(false);
        String type = root.path("model_type").asText("");
        boolean bias = root.has("attention_bias") ? root.get("attention_bias").asBoolean() : type.equals("qwen2");
        boolean value = false;
        for (JsonNode a : root.path("architectures")) {
            if (a.asText().endsWith("ForSequenceClassification") || a.asText().endsWith("ForTokenClassification")) {
                value = true;
            }
        }
        String name = root.path("_name_or_path").asText("");
        if (name.isBlank()) {
            Path dir = configJson.toAbsolutePath().getParent();
            name = dir == null ? configJson.toString() : dir.getFileName().toString();
        }
        try {
            return new ModelSpec(name, layers, hidden, inter, heads, kv, headDim, vocab, tie, bias, value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(configJson + ": " + e.getMessage(), e);
        }
    }

    private static int requiredInt(JsonNode root, String field, Path file) {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) {
            throw new IllegalArgumentException(file + ": missing field '" + field + "'");
        }
        if (!v.canConvertToInt() || !v.isIntegralNumber() || v.asInt() <= 0) {
            throw new IllegalArgumentException(file + ": field '" + field + "' must be a positive integer, got " + v);
        }
        return v.asInt();
    }

    /** The same network with a scalar value head: a critic or reward model initialised from it. */
    public ModelSpec withValueHead() {
        return new ModelSpec(name, layers, hidden, intermediate, heads, kvHeads, headDim, vocab, tieEmbeddings,
                attentionBias, true);
    }

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Parameters of one decoder layer (attention, MLP, both norms, attention biases if any). */
    public long layerParams() {
        long h = hidden;
        long attn = h * qDim() + 2 * h * kvDim() + (long) qDim() * h;
        long mlp = 3 * h * intermediate;
        long bias = attentionBias ? qDim() + 2L * kvDim() : 0;
        return attn + mlp + 2 * h + bias;
    }

    /** Parameters of the matrices of one layer (what GEMMs multiply): excludes norms and biases. */
    public long layerMatrixParams() {
        long h = hidden;
        return h * qDim() + 2 * h * kvDim() + (long) qDim() * h + 3 * h * intermediate;
    }

    public long embeddingParams() {
        return (long) vocab * hidden;
    }

    /** Output head: vocab x hidden (absent when tied), or 1 x hidden for a value head. */
    public long headParams() {
        if (valueHead) {
            return hidden;
        }
        return tieEmbeddings ? 0 : (long) vocab * hidden;
    }

    /** Output width of the head: the vocabulary, or 1 for a value head. */
    public int outputDim() {
        return valueHead ? 1 : vocab;
    }

    public long totalParams() {
        return embeddingParams() + layers * layerParams() + hidden + headParams();
    }
}
