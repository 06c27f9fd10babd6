package org.sparkrlhf.gpuexec.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * The shape of a LLaMA-family decoder, read from a Hugging Face config.json: Llama (grouped-query
 * attention, optional attention/MLP biases), Qwen2 (q/k/v biases, often tied embeddings), Mistral
 * (sliding window), each as a causal LM or as a one-label sequence classifier (reward model or
 * critic, the {@code score} head).
 *
 * @param slidingWindows per layer, the attention window (0: full causal attention)
 * @param padTokenId     -1 when the config has none
 * @param source         the config.json this was read from (null when built in code); written
 *                       back, updated, so that a saved checkpoint keeps every field transformers
 *                       reads
 */
public record ModelConfig(
        String architecture, String modelType, Head head,
        int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
        int numHeads, int numKvHeads, int headDim,
        float rmsNormEps, double ropeTheta, RopeScaling rope, int maxPositions,
        boolean qkvBias, boolean oBias, boolean mlpBias, boolean tieWordEmbeddings,
        int[] slidingWindows, int padTokenId, int bosTokenId, int[] eosTokenIds,
        ObjectNode source) {

    /** What sits on top of the decoder. */
    public enum Head {
        /** lm_head (or the tied embedding): next-token logits. */
        CAUSAL_LM,
        /** score [1, hidden]: one scalar per position, read at the last non-pad token for a reward. */
        SCORE
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> ARCHITECTURES = List.of(
            "LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM",
            "LlamaForSequenceClassification", "Qwen2ForSequenceClassification", "MistralForSequenceClassification");

    public ModelConfig {
        if (numHeads <= 0 || numKvHeads <= 0 || numHeads % numKvHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads " + numHeads + " is not a multiple of num_key_value_heads " + numKvHeads);
        }
        if (headDim <= 0 || headDim % 2 != 0) throw new IllegalArgumentException("head_dim must be even and positive, got " + headDim);
        if (slidingWindows.length != numLayers) throw new IllegalArgumentException("one sliding window per layer expected");
    }

    /** A Llama causal LM built in code (benchmarks, tests), untied, no biases, rope theta 10000. */
    public static ModelConfig llama(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, int maxPositions) {
        return new ModelConfig("LlamaForCausalLM", "llama", Head.CAUSAL_LM, vocab, hidden, intermediate, layers,
                heads, kvHeads, hidden / heads, 1e-5f, 10000.0, RopeScaling.DEFAULT, maxPositions,
                false, false, false, false, new int[layers], 0, 1, new int[]{2}, null);
    }

    public int qDim() {
        return numHeads * headDim;
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    /** The same model with another head (e.g. a critic initialised from an actor's trunk). */
    public ModelConfig withHead(Head newHead) {
        String arch = architecture.replace("ForCausalLM", "").replace("ForSequenceClassification", "")
                + (newHead == Head.CAUSAL_LM ? "ForCausalLM" : "ForSequenceClassification");
        return new ModelConfig(arch, modelType, newHead, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads,
                numKvHeads, headDim, rmsNormEps, ropeTheta, rope, maxPositions, qkvBias, oBias, mlpBias,
                newHead == Head.CAUSAL_LM && tieWordEmbeddings, slidingWindows, padTokenId, bosTokenId, eosTokenIds, null);
    }

    // ---------------------------------------------------------------- reading

    public static ModelConfig read(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new CheckpointException(file + ": no config.json there");
        } catch (IOException e) {
            throw new CheckpointException(file + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (root == null || !root.isObject()) throw new CheckpointException(file + ": expected a JSON object");
        return parse((ObjectNode) root, file.toString());
    }

    public static ModelConfig parse(ObjectNode root, String origin) {
        Reader r = new Reader(root, origin);
        JsonNode archs = root.get("architectures");
        if (archs == null || !archs.isArray() || archs.size() != 1 || !archs.get(0).isTextual()) {
            throw new CheckpointException(origin + ": field 'architectures' must be a list of one name, got " + archs);
        }
        String arch = archs.get(0).asText();
        if (!ARCHITECTURES.contains(arch)) {
            throw new CheckpointException("unsupported architecture " + arch + " in " + origin + " (supported: " + String.join(", ", ARCHITECTURES) + ")");
        }
        String modelType = r.string("model_type", arch.startsWith("Qwen2") ? "qwen2" : arch.startsWith("Mistral") ? "mistral" : "llama");
        Head head = arch.endsWith("ForCausalLM") ? Head.CAUSAL_LM : Head.SCORE;
        if (head == Head.SCORE) {
            int labels = root.has("num_labels") ? r.integer("num_labels") : root.has("id2label") ? root.get("id2label").size() : 2;
            if (labels != 1) throw new CheckpointException(origin + ": field 'num_labels': only 1 label (a scalar score) is supported, got " + labels);
        }
        String act = r.string("hidden_act", "silu");
        if (!act.equals("silu")) throw new CheckpointException(origin + ": field 'hidden_act': only silu is supported, got " + act);

        int hidden = r.integer("hidden_size");
        int heads = r.integer("num_attention_heads");
        int kvHeads = root.hasNonNull("num_key_value_heads") ? r.integer("num_key_value_heads") : heads;
        if (heads % kvHeads != 0) {
            throw new CheckpointException(origin + ": field 'num_key_value_heads': " + kvHeads + " does not divide num_attention_heads " + heads);
        }
        int headDim = root.hasNonNull("head_dim") ? r.integer("head_dim") : hidden / heads;
        int layers = r.integer("num_hidden_layers");

        JsonNode ropeParams = root.hasNonNull("rope_parameters") ? root.get("rope_parameters") : root.get("rope_scaling");
        String ropeField = root.hasNonNull("rope_parameters") ? "rope_parameters" : "rope_scaling";
        double theta = 10000.0;
        if (root.hasNonNull("rope_theta")) theta = r.number("rope_theta");
        RopeScaling rope = RopeScaling.DEFAULT;
        if (ropeParams != null && !ropeParams.isNull()) {
            if (!ropeParams.isObject()) throw new CheckpointException(origin + ": field '" + ropeField + "' must be an object");
            Reader rp = new Reader((ObjectNode) ropeParams, origin, ropeField + ".");
            if (ropeParams.hasNonNull("rope_theta")) theta = rp.number("rope_theta");
            String type = ropeParams.hasNonNull("rope_type") ? rp.string("rope_type", "default") : rp.string("type", "default");
            rope = switch (type) {
                case "default" -> RopeScaling.DEFAULT;
                case "linear" -> new RopeScaling("linear", rp.number("factor"), 0, 0, 0);
                case "llama3" -> new RopeScaling("llama3", rp.number("factor"), rp.number("low_freq_factor"),
                        rp.number("high_freq_factor"), rp.integer("original_max_position_embeddings"));
                default -> throw new CheckpointException(origin + ": field '" + ropeField + ".rope_type': unsupported rope type '"
                        + type + "' (supported: default, linear, llama3)");
            };
            if (ropeParams.hasNonNull("partial_rotary_factor") && rp.number("partial_rotary_factor") != 1.0) {
                throw new CheckpointException(origin + ": field '" + ropeField + ".partial_rotary_factor': partial rotary embeddings are unsupported");
            }
        }
        if (!(theta > 0)) throw new CheckpointException(origin + ": field 'rope_theta' must be positive, got " + theta);

        boolean qkvBias, oBias, mlpBias;
        if (modelType.equals("qwen2")) {
            qkvBias = true;
            oBias = false;
            mlpBias = false;
        } else {
            qkvBias = r.bool("attention_bias", false);
            oBias = qkvBias;
            mlpBias = r.bool("mlp_bias", false);
        }
        boolean tied = r.bool("tie_word_embeddings", false);
        if (head == Head.SCORE) tied = false;

        int[] windows = slidingWindows(root, r, modelType, layers, origin);
        int[] eos = root.hasNonNull("eos_token_id") ? tokenIds(root.get("eos_token_id"), origin + ": field 'eos_token_id'") : new int[0];
        int pad = root.hasNonNull("pad_token_id") ? r.integer("pad_token_id") : -1;
        int bos = root.hasNonNull("bos_token_id") ? r.integer("bos_token_id") : -1;
        return new ModelConfig(arch, modelType, head, r.integer("vocab_size"), hidden, r.integer("intermediate_size"), layers,
                heads, kvHeads, headDim, (float) (root.hasNonNull("rms_norm_eps") ? r.number("rms_norm_eps") : 1e-6), theta, rope,
                root.hasNonNull("max_position_embeddings") ? r.integer("max_position_embeddings") : 2048,
                qkvBias, oBias, mlpBias, tied, windows, pad, bos, eos, root.deepCopy());
    }

    private static int[] slidingWindows(ObjectNode root, Reader r, String modelType, int layers, String origin) {
        int[] w = new int[layers];
        Integer window = root.hasNonNull("sliding_window") ? r.integer("sliding_window") : null;
        JsonNode types = root.get("layer_types");
        if (types != null && types.isArray()) {
            if (types.size() != layers) throw new CheckpointException(origin + ": field 'layer_types' has " + types.size() + " entries for " + layers + " layers");
            for (int i = 0; i < layers; i++) {
                String t = types.get(i).asText();
                if (t.equals("sliding_attention")) {
                    if (window == null) throw new CheckpointException(origin + ": field 'layer_types[" + i + "]' is sliding_attention but 'sliding_window' is null");
                    w[i] = window;
                } else if (!t.equals("full_attention")) {
                    throw new CheckpointException(origin + ": field 'layer_types[" + i + "]': unsupported layer type '" + t + "'");
                }
            }
            return w;
        }
        if (window == null) return w;
        if (modelType.equals("qwen2")) {
            if (r.bool("use_sliding_window", false)) {
                int from = root.hasNonNull("max_window_layers") ? r.integer("max_window_layers") : layers;
                for (int i = from; i < layers; i++) w[i] = window;
            }
        } else if (modelType.equals("mistral")) {
            Arrays.fill(w, window);
        }
        return w;
    }

    private static int[] tokenIds(JsonNode node, String where) {
        if (node.isInt()) return new int[]{node.asInt()};
        if (node.isArray()) {
            int[] ids = new int[node.size()];
            for (int i = 0; i < ids.length; i++) {
                if (!node.get(i).isInt()) throw new CheckpointException(where + "[" + i + "] must be an integer, got " + node.get(i));
                ids[i] = node.get(i).asInt();
            }
            return ids;
        }
        throw new CheckpointException(where + " must be an integer or a list of integers, got " + node);
    }

    /** Reads eos_token_id from a generation_config.json (an int or a list); null if absent. */
    public static int[] eosFromGenerationConfig(Path file) {
        if (!Files.isRegularFile(file)) return null;
        try {
            JsonNode root = JSON.readTree(Files.readAllBytes(file));
            if (root == null || !root.hasNonNull("eos_token_id")) return null;
            return tokenIds(root.get("eos_token_id"), file + ": field 'eos_token_id'");
        } catch (IOException e) {
            throw new CheckpointException(file + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }

    /** Field access with errors that name the file and the field. */
    private record Reader(ObjectNode node, String origin, String prefix) {
        Reader(ObjectNode node, String origin) {
            this(node, origin, "");
        }

        private JsonNode need(String field) {
            JsonNode v = node.get(field);
            if (v == null || v.isNull()) throw new CheckpointException(origin + ": field '" + prefix + field + "' is missing");
            return v;
        }

        int integer(String field) {
            JsonNode v = need(field);
            if (!v.canConvertToExactIntegral() || !v.isNumber() || !v.canConvertToInt()) {
                throw new CheckpointException(origin + ": field '" + prefix + field + "' must be an integer, got " + v);
            }
            return v.asInt();
        }

        double number(String field) {
            JsonNode v = need(field);
            if (!v.isNumber()) throw new CheckpointException(origin + ": field '" + prefix + field + "' must be a number, got " + v);
            return v.asDouble();
        }

        String string(String field, String fallback) {
            JsonNode v = node.get(field);
            if (v == null || v.isNull()) return fallback;
            if (!v.isTextual()) throw new CheckpointException(origin + ": field '" + prefix + field + "' must be a string, got " + v);
            return v.asText();
        }

        boolean bool(String field, boolean fallback) {
            JsonNode v = node.get(field);
            if (v == null || v.isNull()) return fallback;
            if (!v.isBoolean()) throw new CheckpointException(origin + ": field '" + prefix + field + "' must be true or false, got " + v);
            return v.asBoolean();
        }
    }

    // ---------------------------------------------------------------- writing

    /**
     * The config.json to save: the source config with its dtype updated, or, for a config built in
     * code, every field transformers needs for the architecture.
     */
    public ObjectNode toJson(String torchDtype) {
        ObjectNode o;
        if (source != null) {
            o = source.deepCopy();
        } else {
            o = JSON.createObjectNode();
            ArrayNode a = o.putArray("architectures");
            a.add(architecture);
            o.put("model_type", modelType);
            o.put("vocab_size", vocabSize);
            o.put("hidden_size", hiddenSize);
            o.put("intermediate_size", intermediateSize);
            o.put("num_hidden_layers", numLayers);
            o.put("num_attention_heads", numHeads);
            o.put("num_key_value_heads", numKvHeads);
            o.put("head_dim", headDim);
            o.put("hidden_act", "silu");
            o.put("max_position_embeddings", maxPositions);
            o.put("rms_norm_eps", rmsNormEps);
            o.put("rope_theta", ropeTheta);
            ObjectNode rp = o.putObject("rope_parameters");
            rp.put("rope_theta", ropeTheta);
            rp.put("rope_type", rope.type());
            if (!rope.type().equals("default")) {
                rp.put("factor", rope.factor());
                if (rope.type().equals("llama3")) {
                    rp.put("low_freq_factor", rope.lowFreqFactor());
                    rp.put("high_freq_factor", rope.highFreqFactor());
                    rp.put("original_max_position_embeddings", rope.originalMaxPositions());
                }
            }
            if (!modelType.equals("qwen2")) {
                o.put("attention_bias", qkvBias);
                o.put("mlp_bias", mlpBias);
            }
            o.put("tie_word_embeddings", tieWordEmbeddings);
            if (padTokenId >= 0) o.put("pad_token_id", padTokenId);
            if (bosTokenId >= 0) o.put("bos_token_id", bosTokenId);
            if (eosTokenIds.length == 1) o.put("eos_token_id", eosTokenIds[0]);
            else if (eosTokenIds.length > 1) {
                ArrayNode e = o.putArray("eos_token_id");
                for (int id : eosTokenIds) e.add(id);
            }
            if (head == Head.SCORE) {
                o.put("num_labels", 1);
                o.putObject("id2label").put("0", "LABEL_0");
                o.putObject("label2id").put("LABEL_0", 0);
            }
            int window = Arrays.stream(slidingWindows).max().orElse(0);
            if (window > 0) {
                o.put("sliding_window", window);
                ArrayNode types = o.putArray("layer_types");
                for (int w : slidingWindows) types.add(w > 0 ? "sliding_attention" : "full_attention");
            }
        }
        o.put("dtype", torchDtype);
        if (o.has("torch_dtype")) o.put("torch_dtype", torchDtype);
        return o;
    }
}
