package org.sparkrlhf.jobs.checkpoint;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RunCheckpointsTest {
    @TempDir
    Path out;

    private static RunState state(int iteration) {
        return new RunState("run-a", iteration, 1, 1000, 0, iteration * 8L, iteration * 100L, 0.05,
                Map.of("actor", (long) iteration));
    }

    private static RunCheckpoints.Contents weights(String text) {
        return dir -> {
            Files.createDirectories(dir.resolve("actor"));
            Files.writeString(dir.resolve("actor/model.safetensors"), text);
        };
    }

    @Test
    void writesReadsAndKeepsTheNewest() {
        RunCheckpoints cps = new RunCheckpoints("file:" + out, new Configuration());
        assertTrue(cps.newestComplete().isEmpty());
        for (int i = 1; i <= 3; i++) {
            cps.write(state(i * 10), weights("weights " + i), 2);
        }
        assertEquals(List.of("iter-00000020", "iter-00000030"), cps.completeDirs().stream().map(p -> p.getName()).toList());
        RunCheckpoints.Checkpoint newest = cps.newestComplete().orElseThrow();
        assertEquals(state(30), newest.state());
        assertTrue(Files.exists(newest.localDir().resolve("actor/model.safetensors")));
    }

    @Test
    void aWriteThatDiesLeavesNoCompleteCheckpointAndIsCleanedUp() throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        cps.write(state(5), weights("five"), 3);
        assertThrows(IllegalStateException.class, () -> cps.write(state(6), dir -> {
            Files.writeString(dir.resolve("half-written"), "x");
            throw new IOException("killed");
        }, 3));
        assertEquals(5, cps.newestComplete().orElseThrow().state().iteration());
        try (var partials = Files.list(out.resolve("checkpoints"))) {
            assertEquals(1, partials.filter(p -> p.getFileName().toString().contains(".partial-")).count());
        }
        cps.write(state(6), weights("six"), 3);
        try (var partials = Files.list(out.resolve("checkpoints"))) {
            assertEquals(0, partials.filter(p -> p.getFileName().toString().contains(".partial-")).count());
        }
        assertEquals(6, cps.newestComplete().orElseThrow().state().iteration());
    }

    @Test
    void aFolderWhoseFilesDoNotMatchItsMarkerIsNotComplete() throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        cps.write(state(1), weights("one"), 5);
        cps.write(state(2), weights("two"), 5);
        // a copy cut short: a file of checkpoint 2 is shorter than its marker says
        Files.writeString(out.resolve("checkpoints/iter-00000002/actor/model.safetensors"), "tw");
        assertEquals(1, cps.newestComplete().orElseThrow().state().iteration());
        // a folder without its marker
        Files.delete(out.resolve("checkpoints/iter-00000001/_COMPLETE"));
        assertFalse(cps.newestComplete().isPresent());
    }

    private RunConfig config(String name, long seed, int iterations) throws IOException {
        Path model = out.resolve("model");
        Files.createDirectories(model);
        Files.writeString(model.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128}
                """);
        Path file = out.resolve(name + "-" + seed + ".yaml");
        Files.writeString(file, """
                name: %s
                algorithm: sft
                seed: %d
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                data: {path: %s, batch_size: 4}
                """.formatted(name, seed, iterations, out, model, out.resolve("data.jsonl")));
        return new RunConfigReader(new Configuration()).read(file.toString());
    }

    @Test
    void resumeTakesTheNewestCompleteCheckpointOfTheSameRunOnly() throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        PrintStream progress = new PrintStream(text, true, StandardCharsets.UTF_8);
        RunConfig run = config("run-a", 1, 100);
        // nothing to resume: a fresh start, said
        assertTrue(cps.resume(run, 1000, true, progress).isEmpty());
        assertTrue(text.toString(StandardCharsets.UTF_8).contains("no complete checkpoint"), text.toString());
        assertTrue(cps.resume(run, 1000, false, progress).isEmpty());

        cps.write(state(20), weights("twenty"), 2);
        cps.write(state(30), weights("thirty"), 2);
        RunCheckpoints.Checkpoint cp = cps.resume(run, 1000, true, progress).orElseThrow();
        assertEquals(state(30), cp.state());
        assertEquals(new ModelSource(cp.localDir().resolve("actor").toString(), 30), cp.source("actor"));
        assertThrows(IllegalArgumentException.class, () -> cp.source("critic"));

        String fresh = assertThrows(IllegalArgumentException.class, () -> cps.resume(run, 1000, false, progress))
                .getMessage();
        assertTrue(fresh.contains("--resume") && fresh.contains("iteration 30"), fresh);
        String name = assertThrows(IllegalArgumentException.class,
                () -> cps.resume(config("run-b", 1, 100), 1000, true, progress)).getMessage();
        assertTrue(name.contains("'run-b'") && name.contains("'run-a'"), name);
        String seed = assertThrows(IllegalArgumentException.class,
                () -> cps.resume(config("run-a", 2, 100), 1000, true, progress)).getMessage();
        assertTrue(seed.contains("seed"), seed);
        String data = assertThrows(IllegalArgumentException.class, () -> cps.resume(run, 999, true, progress))
                .getMessage();
        assertTrue(data.contains("999") && data.contains("1000"), data);
        String done = assertThrows(IllegalArgumentException.class,
                () -> cps.resume(config("run-a", 1, 30), 1000, true, progress)).getMessage();
        assertTrue(done.contains("nothing is left"), done);
    }
}
