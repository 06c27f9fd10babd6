package org.sparkrlhf.gpuexec.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class EngineCliTest {
    @TempDir
    Path tmp;

    record Outcome(int status, String out, String err) {
    }

    static Outcome run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int status = EngineCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static String ids(int[] all, int from, int to) {
        return IntStream.range(from, to).mapToObj(i -> Integer.toString(all[i])).collect(Collectors.joining(",", "[", "]"));
    }

    @Test
    void logprobsOfTheFixtureMatchTransformers() throws IOException {
        SafeTensorsFile e = Fixtures.expected("tiny-llama");
        int[] ids = e.readInts("input_ids");
        float[] expected = e.readFloats("token_logprobs");
        Path in = tmp.resolve("in.jsonl"), out = tmp.resolve("out.jsonl");
        // row 0 whole, row 1 without its padding (20 tokens), and a field that must be kept
        Files.writeString(in, "{\"input_ids\": " + ids(ids, 0, 24) + ", \"keep\": \"me\"}\n"
                + "{\"input_ids\": " + ids(ids, 24, 44) + "}\n");
        Outcome o = run("logprobs", "--model", Fixtures.dir("tiny-llama").toString(), "--input", in.toString(), "--output", out.toString());
        assertEquals(0, o.status(), o.err());
        List<String> lines = Files.readAllLines(out);
        assertEquals(2, lines.size());
        ObjectMapper json = new ObjectMapper();
        JsonNode first = json.readTree(lines.get(0)), second = json.readTree(lines.get(1));
        assertEquals("me", first.get("keep").asText());
        assertEquals(23, first.get("token_logprobs").size());
        assertEquals(19, second.get("token_logprobs").size());
        for (int t = 0; t < 23; t++) assertEquals(expected[t], first.get("token_logprobs").get(t).floatValue(), 1e-4);
        for (int t = 0; t < 19; t++) assertEquals(expected[23 + t], second.get("token_logprobs").get(t).floatValue(), 1e-4);
    }

    @Test
    void textLinesAreTokenizedAndGenerateIsGreedyByDefault() throws IOException {
        Path in = tmp.resolve("in.jsonl"), out = tmp.resolve("out.jsonl");
        Files.writeString(in, "{\"text\": \"Reinforcement learning\"}\n");
        Outcome o = run("logprobs", "--model", Fixtures.dir("tiny-llama").toString(), "--input", in.toString(), "--output", out.toString());
        assertEquals(0, o.status(), o.err());
        assertTrue(Files.readString(out).contains("\"token_logprobs\":["));
        String dir = Fixtures.dir("tiny-llama").toString();
        Outcome a = run("generate", "--model", dir, "--prompt", "Reinforcement learning", "--max-new-tokens", "8");
        Outcome b = run("generate", "--model", dir, "--prompt", "Reinforcement learning", "--max-new-tokens", "8");
        assertEquals(0, a.status(), a.err());
        assertEquals(a.out(), b.out());
        assertFalse(a.out().isBlank());
    }

    void assertBadInput(Outcome o, Path out, String... parts) {
        assertEquals(2, o.status(), "exit status; stderr: " + o.err());
        String msg = o.err().strip();
        assertEquals(1, msg.lines().count(), "one line: " + msg);
        for (String p : parts) assertTrue(msg.contains(p), "'" + msg + "' should mention " + p);
        if (out != null) assertFalse(Files.exists(out), "no output is written");
    }

    @Test
    void malformedLinesNameFileLineAndField() throws IOException {
        String model = Fixtures.dir("tiny-llama").toString();
        Path out = tmp.resolve("out.jsonl");
        Path in = tmp.resolve("bad.jsonl");

        Files.writeString(in, "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 2, \n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":2", "not valid JSON");

        Files.writeString(in, "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [1, 600, 3]}\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out,
                in + ":3", "'input_ids'[1]", "600", "[0, 512)");

        Files.writeString(in, "{\"input_ids\": [1, -4]}\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":1", "'input_ids'[1]");

        Files.writeString(in, "{\"input_ids\": [1, \"x\"]}\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":1", "'input_ids'[1]", "integer");

        Files.writeString(in, "{\"prompt\": \"hello\"}\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":1", "'input_ids'", "'text'");

        Files.writeString(in, "[1, 2, 3]\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":1", "JSON object");

        Files.writeString(in, "{\"text\": 5}\n");
        assertBadInput(run("logprobs", "--model", model, "--input", in.toString(), "--output", out.toString()), out, in + ":1", "'text'");

        assertBadInput(run("logprobs", "--model", model, "--input", tmp.resolve("missing.jsonl").toString(), "--output", out.toString()), out,
                "missing.jsonl", "no such input file");
    }

    @Test
    void missingOrCorruptCheckpointsAreBadInput() throws IOException {
        Path out = tmp.resolve("out.jsonl");
        Path in = tmp.resolve("in.jsonl");
        Files.writeString(in, "{\"input_ids\": [1, 2, 3]}\n");
        Path missing = tmp.resolve("no-model");
        assertBadInput(run("logprobs", "--model", missing.toString(), "--input", in.toString(), "--output", out.toString()), out,
                missing.toString(), "no such model directory");

        Path corrupt = copyFixture("tiny-llama", tmp.resolve("corrupt"));
        byte[] bytes = Files.readAllBytes(corrupt.resolve("model.safetensors"));
        bytes[8] = 'X'; // the header's opening brace
        Files.write(corrupt.resolve("model.safetensors"), bytes);
        assertBadInput(run("logprobs", "--model", corrupt.toString(), "--input", in.toString(), "--output", out.toString()), out,
                corrupt.resolve("model.safetensors").toString(), "corrupt safetensors header");

        Path truncated = copyFixture("tiny-llama", tmp.resolve("truncated"));
        byte[] whole = Files.readAllBytes(Fixtures.dir("tiny-llama").resolve("model.safetensors"));
        Files.write(truncated.resolve("model.safetensors"), Arrays.copyOf(whole, whole.length / 2));
        assertBadInput(run("logprobs", "--model", truncated.toString(), "--input", in.toString(), "--output", out.toString()), out,
                truncated.resolve("model.safetensors").toString(), "data_offsets");

        Path unsupported = copyFixture("tiny-llama", tmp.resolve("gpt2"));
        Files.writeString(unsupported.resolve("config.json"),
                Files.readString(unsupported.resolve("config.json")).replace("LlamaForCausalLM", "GPT2LMHeadModel"));
        assertBadInput(run("logprobs", "--model", unsupported.toString(), "--input", in.toString(), "--output", out.toString()), out,
                "unsupported architecture GPT2LMHeadModel", unsupported.resolve("config.json").toString());

        assertBadInput(run("generate", "--model", Fixtures.dir("tiny-llama-reward").toString(), "--prompt", "hi"), null,
                "LlamaForSequenceClassification", "causal LM");
    }

    @Test
    void badOptionsAreBadInput() {
        String model = Fixtures.dir("tiny-llama").toString();
        assertBadInput(run("generate", "--model", model, "--prompt", "hi", "--temperature", "warm"), null, "--temperature", "warm");
        assertBadInput(run("generate", "--model", model), null, "--prompt", "required");
        assertBadInput(run("generate", "--model", model, "--prompt", "hi", "--top-p", "0"), null, "--top-p");
        assertBadInput(run("generate", "--model", model, "--prompt", "hi", "--beam", "3"), null, "--beam");
        assertBadInput(run("train"), null, "unknown command 'train'");
    }

    static Path copyFixture(String name, Path to) throws IOException {
        Files.createDirectories(to);
        try (var files = Files.list(Fixtures.dir(name))) {
            for (Path p : (Iterable<Path>) files::iterator) Files.copy(p, to.resolve(p.getFileName()));
        }
        return to;
    }
}
