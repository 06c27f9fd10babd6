package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Checks a Hugging Face model folder before anything loads it, reading only its small parts:
 * {@code config.json} (every field the engine needs), the header of every safetensors file
 * (dtype, shape, and a byte range inside the file: a file cut short is found here, not when an
 * executor reads its last tensor), that every parameter the config implies is there with its shape
 * and a float type, and the tokenizer when the run reads one. Tensor data is not read, so the check
 * costs milliseconds whatever the model's size. Every error names the file and the tensor or field.
 */
public final class ModelFolderCheck {
    /** What a run loads a folder as. */
    public enum Use {
        /** A causal LM, loaded as it is (actor, reference model). */
        CAUSAL_LM,
        /** A one-label ...ForSequenceClassification, loaded as it is (reward model). */
        SCORE,
        /**
         * A value model: a score model as it is, or a causal LM's decoder under a fresh value head
         * (the critic, as the jobs' Critics loads it).
         */
        VALUE
    }

    private ModelFolderCheck() {
    }

    /**
     * Checks {@code dir} for {@code use} (with its {@code tokenizer.json} when {@code tokenizer});
     * returns its config. Throws {@link CheckpointException} naming the file and the tensor or field.
     */
    public static ModelConfig check(Path dir, Use use, boolean tokenizer) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException(dir + ": no such model directory");
        }
        Path configFile = dir.resolve("config.json");
        ModelConfig config;
        try {
            config = ModelConfig.read(configFile);
        } catch (IllegalArgumentException e) {
            // the record's own invariants (heads, head_dim): say which file broke them
            throw new CheckpointException(configFile + ": " + e.getMessage(), e);
        }
        checkHead(configFile, config, use);
        checkTokenIds(configFile, config);
        CheckpointWeights weights = CheckpointWeights.open(dir);
        ModelConfig loaded = use == Use.VALUE ? config.withHead(ModelConfig.Head.SCORE) : config;
        boolean freshHead = use == Use.VALUE && config.head() == ModelConfig.Head.CAUSAL_LM;
        for (LlamaWeights.Spec spec : LlamaWeights.specs(loaded)) {
            if (freshHead && spec.name().equals("score.weight")) {
                continue;
            }
            checkTensor(dir, weights, spec, config.architecture());
        }
        if (tokenizer) {
            checkTokenizer(dir);
        }
        return config;
    }

    private static void checkHead(Path configFile, ModelConfig config, Use use) {
        boolean ok = switch (use) {
            case CAUSAL_LM -> config.head() == ModelConfig.Head.CAUSAL_LM;
            case SCORE -> config.head() == ModelConfig.Head.SCORE;
            case VALUE -> true;
        };
        if (!ok) {
            throw new CheckpointException(configFile + ": field 'architectures': " + config.architecture() + " is not a "
                    + (use == Use.CAUSAL_LM ? "...ForCausalLM" : "...ForSequenceClassification") + " model");
        }
    }

    /** Special token ids index the embedding table: one outside it would fail only when first used. */
    private static void checkTokenIds(Path configFile, ModelConfig config) {
        // bos and pad are -1 when the config has none
        checkTokenId(configFile, "bos_token_id", config.bosTokenId(), config.vocabSize(), true);
        checkTokenId(configFile, "pad_token_id", config.padTokenId(), config.vocabSize(), true);
        for (int id : config.eosTokenIds()) {
            checkTokenId(configFile, "eos_token_id", id, config.vocabSize(), false);
        }
    }

    private static void checkTokenId(Path configFile, String field, int id, int vocab, boolean mayBeAbsent) {
        if (id >= vocab || (id < 0 && !(mayBeAbsent && id == -1))) {
            throw new CheckpointException(configFile + ": field '" + field + "': " + id + " is not in [0, vocab_size "
                    + vocab + ")");
        }
    }

    private static void checkTensor(Path dir, CheckpointWeights weights, LlamaWeights.Spec spec, String architecture) {
        if (!weights.has(spec.name())) {
            throw new CheckpointException(dir + ": the checkpoint has no tensor '" + spec.name() + "' that "
                    + architecture + " needs");
        }
        SafeTensorsFile.Entry entry = weights.entry(spec.name());
        Path file = weights.fileOf(spec.name());
        if (!entry.dtype().isFloat()) {
            throw new CheckpointException(file + ": tensor '" + spec.name() + "': field 'dtype' is " + entry.dtype()
                    + "; a parameter is F32, BF16 or F16");
        }
        if (!Arrays.equals(entry.shape(), spec.shape())) {
            throw new CheckpointException(file + ": tensor '" + spec.name() + "': field 'shape' is "
                    + Arrays.toString(entry.shape()) + ", the config needs " + Arrays.toString(spec.shape()));
        }
    }

    private static void checkTokenizer(Path dir) {
        Path file = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException(file + ": no tokenizer.json there (the run tokenizes prompts with it)");
        }
        try (HfTokenizer ignored = HfTokenizer.open(file)) {
            // opened: the file parses as a tokenizer
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(e.getMessage(), e);
        }
    }
}
