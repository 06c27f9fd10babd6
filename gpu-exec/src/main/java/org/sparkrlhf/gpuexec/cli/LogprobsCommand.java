package org.sparkrlhf.gpuexec.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.AtomicFiles;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code logprobs}: every input line is validated first, then scored in batches, then the output
 * is written whole (temporary file renamed), so a bad line leaves no output file behind.
 */
final class LogprobsCommand {
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Line(int number, ObjectNode node, int[] ids) {
    }

    private LogprobsCommand() {
    }

    static void run(String[] args, PrintStream log) {
        CliArgs a = new CliArgs("logprobs", args, 0, Set.of("model", "input", "output", "batch-size"));
        Path modelDir = Path.of(a.required("model"));
        Path input = Path.of(a.required("input"));
        Path output = Path.of(a.required("output"));
        int batchSize = a.integer("batch-size", 8, 1);
        if (!Files.isDirectory(modelDir)) throw new InputException(modelDir + ": no such model directory");
        ModelConfig config = ModelConfig.read(modelDir.resolve("config.json"));
        if (config.head() != ModelConfig.Head.CAUSAL_LM) {
            throw new InputException(modelDir.resolve("config.json") + ": architecture " + config.architecture()
                    + " has no LM head; logprobs needs a causal LM");
        }
        List<Line> lines = readLines(input, modelDir, config.vocabSize());
        try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, modelDir)) {
            StringBuilder out = new StringBuilder();
            for (int from = 0; from < lines.size(); from += batchSize) {
                List<Line> chunk = lines.subList(from, Math.min(lines.size(), from + batchSize));
                float[][] logprobs = score(model, chunk);
                for (int i = 0; i < chunk.size(); i++) {
                    ObjectNode node = chunk.get(i).node();
                    ArrayNode arr = node.putArray("token_logprobs");
                    for (float v : logprobs[i]) arr.add(v);
                    out.append(JSON.writeValueAsString(node)).append('\n');
                }
            }
            AtomicFiles.writeString(output, out.toString());
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static float[][] score(LlamaModel model, List<Line> chunk) {
        int[][] seqs = new int[chunk.size()][];
        int maxLen = 0;
        for (int i = 0; i < seqs.length; i++) {
            seqs[i] = chunk.get(i).ids();
            maxLen = Math.max(maxLen, seqs[i].length);
        }
        float[][] result = new float[seqs.length][];
        if (maxLen < 2) {
            for (int i = 0; i < seqs.length; i++) result[i] = new float[0];
            return result;
        }
        int pad = Math.max(model.config().padTokenId(), 0);
        Batch batch = Batch.rightPadded(seqs, pad);
        TokenStats stats = model.forward(List.of(batch), false, false).get(0);
        for (int i = 0; i < seqs.length; i++) {
            int n = Math.max(seqs[i].length - 1, 0);
            result[i] = new float[n];
            System.arraycopy(stats.logprobs(), i * stats.steps(), result[i], 0, n);
        }
        return result;
    }

    private static List<Line> readLines(Path input, Path modelDir, int vocab) {
        List<Line> lines = new ArrayList<>();
        HfTokenizer tokenizer = null;
        try (BufferedReader r = Files.newBufferedReader(input, StandardCharsets.UTF_8)) {
            String text;
            int number = 0;
            while ((text = r.readLine()) != null) {
                number++;
                if (text.isBlank()) continue;
                String where = input + ":" + number;
                JsonNode node;
                try {
                    node = JSON.readTree(text);
                } catch (JsonProcessingException e) {
                    throw new InputException(where + ": not valid JSON (" + e.getOriginalMessage() + ")");
                }
                if (node == null || !node.isObject()) throw new InputException(where + ": expected a JSON object, got " + abbreviate(text));
                JsonNode idsNode = node.get("input_ids"), textNode = node.get("text");
                int[] ids;
                String field;
                if (idsNode != null && !idsNode.isNull()) {
                    field = "input_ids";
                    ids = ids(idsNode, where);
                } else if (textNode != null && !textNode.isNull()) {
                    field = "text";
                    if (!textNode.isTextual()) throw new InputException(where + ": field 'text' must be a string, got " + abbreviate(textNode.toString()));
                    if (tokenizer == null) tokenizer = openTokenizer(modelDir, where);
                    ids = tokenizer.encodeInts(textNode.asText());
                } else {
                    throw new InputException(where + ": expected field 'input_ids' (a list of token ids) or 'text' (a string)");
                }
                if (ids.length == 0) throw new InputException(where + ": field '" + field + "' gives no tokens");
                for (int i = 0; i < ids.length; i++) {
                    if (ids[i] < 0 || ids[i] >= vocab) {
                        throw new InputException(where + ": field '" + field + "'[" + i + "]: token id " + ids[i]
                                + " outside the model's vocabulary [0, " + vocab + ")");
                    }
                }
                lines.add(new Line(number, (ObjectNode) node, ids));
            }
        } catch (NoSuchFileException e) {
            throw new InputException(input + ": no such input file");
        } catch (CharacterCodingException e) {
            throw new InputException(input + ": not UTF-8 text");
        } catch (IOException e) {
            throw new UncheckedIOException(input + ": cannot read: " + e.getMessage(), e);
        } finally {
            if (tokenizer != null) tokenizer.close();
        }
        return lines;
    }

    private static HfTokenizer openTokenizer(Path modelDir, String where) {
        try {
            return HfTokenizer.open(modelDir);
        } catch (IllegalArgumentException e) {
            throw new InputException(e.getMessage() + " (needed for the field 'text' of " + where + ")");
        }
    }

    private static int[] ids(JsonNode node, String where) {
        if (!node.isArray()) throw new InputException(where + ": field 'input_ids' must be a list of integers, got " + abbreviate(node.toString()));
        int[] ids = new int[node.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw new InputException(where + ": field 'input_ids'[" + i + "]: expected an integer token id, got " + abbreviate(v.toString()));
            }
            ids[i] = v.asInt();
        }
        return ids;
    }

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 57) + "...";
    }
}
