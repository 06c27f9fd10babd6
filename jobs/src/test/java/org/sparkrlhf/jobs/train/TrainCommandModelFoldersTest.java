package org.sparkrlhf.jobs.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf train} over a run whose model folder is bad: exit 2 before Spark starts, the
 * message naming the role, the file and the tensor or field, and nothing written under the output.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TrainCommandModelFoldersTest {
    @TempDir
    Path dir;

    private Path copyOfTinyLlama(String name) throws IOException {
        Path copy = dir.resolve(name);
        Files.createDirectories(copy);
        try (var files = Files.list(SftTrainingTest.TINY_LLAMA)) {
            for (Path f : files.toList()) {
                Files.copy(f, copy.resolve(f.getFileName()));
            }
        }
        return copy;
    }

    private Path config(String algorithm, String models) throws IOException {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"id\": \"q1\", \"prompt\": \"1+1=\", \"answer\": \"2\", \"reference\": \"2\"}\n");
        Path yaml = dir.resolve(algorithm + ".yaml");
        Files.writeString(yaml, """
                name: bad-model
                algorithm: %s
                iterations: 2
                output: %s
                models:
                %s
                %s
                data: {path: %s, batch_size: 1}
                spark: {master: "local[1]"}
                """.formatted(algorithm, dir.resolve("run"), models.indent(2).stripTrailing(),
                algorithm.equals("sft") ? "" : "reward: {function: arithmetic}", data));
        return yaml;
    }

    private String refused(Path yaml) {
        return refusedBeforeSpark(yaml, dir.resolve("run"));
    }

    /**
     * Runs the train command on {@code yaml}; returns its stderr after checking exit 2, no progress
     * (the devices' discovery prints), no Spark session and nothing at {@code output}.
     */
    static String refusedBeforeSpark(Path yaml, Path output) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TrainCommand.run(new String[]{yaml.toString()}, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        String message = err.toString(StandardCharsets.UTF_8);
        assertEquals(2, code, message);
        assertEquals("", out.toString(StandardCharsets.UTF_8), "the devices' discovery printed: it ran");
        assertFalse(SparkSession.getDefaultSession().isDefined(), "a Spark session was started");
        assertFalse(Files.exists(output), "nothing is written");
        return message;
    }

    @Test
    void aTruncatedActorIsRefusedNamingTheFileAndTheTensor() throws IOException {
        Path actor = copyOfTinyLlama("actor");
        Path weights = actor.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(weights);
        Files.write(weights, Arrays.copyOf(bytes, bytes.length - 100));
        // the last tensor of the fixture's 607488 data bytes (model.norm.weight, bytes [607232, 607488))
        // loses its last 100
        String message = refused(config("grpo", """
                actor: {path: %s}
                ref: {path: %s}""".formatted(actor, SftTrainingTest.TINY_LLAMA)));
        assertEquals("spark-rlhf train: " + dir.resolve("grpo.yaml") + ": models.actor.path: " + weights
                + ": tensor 'model.norm.weight': field 'data_offsets' [607232, 607488] outside the 607388 data bytes "
                + "(truncated file?)\n", message);
    }

    @Test
    void aCriticWhoseConfigLacksAFieldIsRefused() throws IOException {
        Path critic = copyOfTinyLlama("critic");
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(critic.resolve("config.json").toFile());
        config.remove("num_hidden_layers");
        json.writeValue(critic.resolve("config.json").toFile(), config);
        String message = refused(config("ppo", """
                actor: {path: %s}
                ref: {path: %s}
                critic: {path: %s}""".formatted(SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA, critic)));
        assertTrue(message.contains(": models.critic.path: " + critic.resolve("config.json")
                + ": field 'num_hidden_layers' is missing"), message);
    }

    @Test
    void anActorWithoutItsTokenizerIsRefused() throws IOException {
        Path actor = copyOfTinyLlama("actor");
        Files.delete(actor.resolve("tokenizer.json"));
        String message = refused(config("sft", "actor: {path: %s}".formatted(actor)));
        assertTrue(message.contains(": models.actor.path: " + actor.resolve("tokenizer.json") + ": no tokenizer.json"),
                message);
    }
}
