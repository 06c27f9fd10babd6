package org.sparkrlhf.gpuexec.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.model.ModelFolderCheck.Use;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ModelFolderCheck} on copies of the HF fixtures, each spoiled in one way: the error names
 * the file and the tensor or field, values computed from the intact file's header.
 */
@Timeout(60)
class ModelFolderCheckTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    private Path copy(String fixture) throws IOException {
        Path dir = tmp.resolve(fixture);
        Files.createDirectories(dir);
        try (var files = Files.list(Fixtures.dir(fixture))) {
            for (Path f : files.toList()) {
                Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        return dir;
    }

    private static String failure(Path dir, Use use, boolean tokenizer) {
        return assertThrows(CheckpointException.class, () -> ModelFolderCheck.check(dir, use, tokenizer)).getMessage();
    }

    /** Rewrites a safetensors file's JSON header through {@code edit}, keeping its data bytes. */
    private static void editHeader(Path file, Consumer<ObjectNode> edit) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        int headerLen = (int) ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectNode header = (ObjectNode) JSON.readTree(new String(bytes, 8, headerLen, StandardCharsets.UTF_8));
        edit.accept(header);
        byte[] newHeader = JSON.writeValueAsBytes(header);
        ByteBuffer out = ByteBuffer.allocate(8 + newHeader.length + bytes.length - 8 - headerLen).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(newHeader.length).put(newHeader).put(bytes, 8 + headerLen, bytes.length - 8 - headerLen);
        Files.write(file, out.array());
    }

    @Test
    void intactFixturesPassAndTheirConfigIsReturned() throws IOException {
        ModelConfig actor = ModelFolderCheck.check(copy("tiny-llama"), Use.CAUSAL_LM, true);
        assertEquals(2, actor.numLayers());
        assertEquals(512, actor.vocabSize());
        assertEquals(ModelConfig.Head.SCORE,
                ModelFolderCheck.check(copy("tiny-llama-reward"), Use.SCORE, false).head());
        // a critic from a reward model, or from a causal LM's decoder (its value head is made fresh)
        ModelFolderCheck.check(Fixtures.dir("tiny-llama-reward"), Use.VALUE, false);
        ModelFolderCheck.check(Fixtures.dir("tiny-llama"), Use.VALUE, false);
        ModelFolderCheck.check(copy("tiny-qwen2"), Use.CAUSAL_LM, true);
    }

    @Test
    void aTruncatedWeightsFileNamesTheTensorWhoseBytesAreCut() throws IOException {
        Path dir = copy("tiny-llama");
        Path file = dir.resolve("model.safetensors");
        SafeTensorsFile intact = SafeTensorsFile.open(file);
        SafeTensorsFile.Entry last = intact.entries().values().stream()
                .max(Comparator.comparingLong(SafeTensorsFile.Entry::end)).orElseThrow();
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length - 100));
        long dataBytes = last.end() - 100; // the intact file's data ends with the last tensor
        String message = failure(dir, Use.CAUSAL_LM, true);
        assertTrue(message.startsWith(file.toString()), message);
        assertTrue(message.contains("tensor '" + last.name() + "'") && message.contains("[" + last.begin() + ", "
                + last.end() + "] outside the " + dataBytes + " data bytes"), message);

        // cut inside the header: its length no longer fits the file
        Files.write(file, Arrays.copyOf(bytes, 1000));
        message = failure(dir, Use.CAUSAL_LM, true);
        assertTrue(message.startsWith(file + ": corrupt safetensors header"), message);
    }

    @Test
    void aHeaderByteRangeOutsideTheFileIsNamed() throws IOException {
        Path dir = copy("tiny-llama");
        Path file = dir.resolve("model.safetensors");
        long dataBytes = Files.size(file) - 8 - headerLength(file);
        // model.norm.weight: 64 floats = 256 bytes, moved past the end of the data
        editHeader(file, h -> ((ObjectNode) h.get("model.norm.weight")).putArray("data_offsets")
                .add(dataBytes).add(dataBytes + 256));
        String message = failure(dir, Use.CAUSAL_LM, false);
        assertTrue(message.startsWith(file + ": tensor 'model.norm.weight': field 'data_offsets' [" + dataBytes + ", "
                + (dataBytes + 256) + "] outside the " + dataBytes + " data bytes"), message);
    }

    private static long headerLength(Path file) throws IOException {
        byte[] head = Arrays.copyOf(Files.readAllBytes(file), 8);
        return ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @Test
    void aBadDtypeIsNamed() throws IOException {
        Path dir = copy("tiny-llama");
        Path file = dir.resolve("model.safetensors");
        // I32 has F32's width, so the header is consistent: only a parameter check finds it
        editHeader(file, h -> ((ObjectNode) h.get("model.layers.0.input_layernorm.weight")).put("dtype", "I32"));
        String message = failure(dir, Use.CAUSAL_LM, false);
        assertEquals(file + ": tensor 'model.layers.0.input_layernorm.weight': field 'dtype' is I32; a parameter is "
                + "F32, BF16 or F16", message);
        // a type safetensors has but the engine does not read
        editHeader(file, h -> ((ObjectNode) h.get("model.layers.0.input_layernorm.weight")).put("dtype", "F64"));
        message = failure(dir, Use.CAUSAL_LM, false);
        assertTrue(message.startsWith(file + ": tensor 'model.layers.0.input_layernorm.weight': field 'dtype': "
                + "unsupported type F64"), message);
    }

    @Test
    void aMissingOrMisshapenTensorIsNamed() throws IOException {
        Path dir = copy("tiny-llama");
        Path file = dir.resolve("model.safetensors");
        // the same 64 x 4 bytes with another shape
        editHeader(file, h -> ((ObjectNode) h.get("model.norm.weight")).putArray("shape").add(32).add(2));
        assertEquals(file + ": tensor 'model.norm.weight': field 'shape' is [32, 2], the config needs [64]",
                failure(dir, Use.CAUSAL_LM, false));
        editHeader(file, h -> {
            ((ObjectNode) h.get("model.norm.weight")).putArray("shape").add(64);
            h.remove("lm_head.weight");
        });
        assertEquals(dir + ": the checkpoint has no tensor 'lm_head.weight' that LlamaForCausalLM needs",
                failure(dir, Use.CAUSAL_LM, false));
        // the critic's decoder does not need the LM head: a fresh value head takes its place
        ModelFolderCheck.check(dir, Use.VALUE, false);
    }

    @Test
    void aMissingOrBadConfigFieldIsNamed() throws IOException {
        Path dir = copy("tiny-llama");
        Path config = dir.resolve("config.json");
        ObjectNode intact = (ObjectNode) JSON.readTree(config.toFile());
        ObjectNode noHidden = intact.deepCopy();
        noHidden.remove("hidden_size");
        JSON.writeValue(config.toFile(), noHidden);
        assertEquals(config + ": field 'hidden_size' is missing", failure(dir, Use.CAUSAL_LM, true));

        ObjectNode eos = intact.deepCopy();
        eos.put("eos_token_id", 512);
        JSON.writeValue(config.toFile(), eos);
        assertEquals(config + ": field 'eos_token_id': 512 is not in [0, vocab_size 512)", failure(dir, Use.CAUSAL_LM, true));

        JSON.writeValue(config.toFile(), intact);
        assertEquals(config + ": field 'architectures': LlamaForCausalLM is not a ...ForSequenceClassification model",
                failure(dir, Use.SCORE, false));

        Files.writeString(config, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_");
        assertTrue(failure(dir, Use.CAUSAL_LM, true).startsWith(config + ": not valid JSON"));
    }

    @Test
    void aMissingOrBrokenTokenizerIsNamedWhenTheRunReadsOne() throws IOException {
        Path dir = copy("tiny-llama");
        Path tokenizer = dir.resolve("tokenizer.json");
        String text = Files.readString(tokenizer);
        Files.writeString(tokenizer, text.substring(0, text.length() / 2));
        String message = failure(dir, Use.CAUSAL_LM, true);
        assertTrue(message.startsWith(tokenizer + ": cannot read tokenizer"), message);
        Files.delete(tokenizer);
        assertEquals(tokenizer + ": no tokenizer.json there (the run tokenizes prompts with it)",
                failure(dir, Use.CAUSAL_LM, true));
        // a reference model's tokens are the actor's: it needs no tokenizer of its own
        ModelFolderCheck.check(dir, Use.CAUSAL_LM, false);
    }
}
