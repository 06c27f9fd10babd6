package org.sparkrlhf.jobs.checkpoint;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.files.HadoopFiles;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RunCheckpointsTest {
    @TempDir
    Path out;

    private static RunState state(int iteration) {
        return new RunState("run-a", iteration, 1, 1000, 0, iteration * 8L, iteration * 100L, 0.05,
                Map.of("actor", (long) iteration), Map.of());
    }

    private static RunCheckpoints.Contents weights(String text) {
        return dir -> HadoopFiles.write(HadoopFiles.resolve(dir, "actor/model.safetensors"),
                text.getBytes(StandardCharsets.UTF_8));
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
            HadoopFiles.write(HadoopFiles.resolve(dir, "half-written"), new byte[] {'x'});
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
        assertEquals(new ModelSource("file:" + out.resolve("checkpoints/iter-00000030/actor"), 30), cp.source("actor"));
        assertEquals(cp.localDir().resolve("actor"), cp.source("actor").localPath());
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

    /** Ways a checkpoint is spoiled after it was written, with the reason a reader gives. */
    enum Corruption {
        TRUNCATED_FILE("actor/model.safetensors has 2 bytes, _COMPLETE lists 3") {
            void apply(Path cp) throws IOException {
                Files.writeString(cp.resolve("actor/model.safetensors"), "tw");
            }
        },
        LONGER_FILE("actor/model.safetensors has 6 bytes, _COMPLETE lists 3") {
            void apply(Path cp) throws IOException {
                Files.writeString(cp.resolve("actor/model.safetensors"), "twotwo");
            }
        },
        MISSING_FILE("actor/model.safetensors, listed in _COMPLETE, is missing") {
            void apply(Path cp) throws IOException {
                Files.delete(cp.resolve("actor/model.safetensors"));
            }
        },
        UNLISTED_FILE("actor/stray.bin is not listed in _COMPLETE") {
            void apply(Path cp) throws IOException {
                Files.writeString(cp.resolve("actor/stray.bin"), "x");
            }
        },
        MISSING_MARKER("no _COMPLETE: its write was cut short, or the marker was lost") {
            void apply(Path cp) throws IOException {
                Files.delete(cp.resolve("_COMPLETE"));
            }
        },
        MARKER_CUT_SHORT("_COMPLETE cannot be read: ") {
            void apply(Path cp) throws IOException {
                Path marker = cp.resolve("_COMPLETE");
                Files.write(marker, java.util.Arrays.copyOf(Files.readAllBytes(marker), 10));
                Files.deleteIfExists(cp.resolve("._COMPLETE.crc")); // cut short as a plain copy would
            }
        },
        STATE_GARBLED("state.json cannot be read: ") {
            void apply(Path cp) throws IOException {
                Path state = cp.resolve("state.json");
                Files.writeString(state, "x".repeat((int) Files.size(state))); // same size: only reading finds it
                Files.deleteIfExists(cp.resolve(".state.json.crc"));
            }
        };

        final String reason;

        Corruption(String reason) {
            this.reason = reason;
        }

        abstract void apply(Path checkpoint) throws IOException;
    }

    private List<String> checkpointFolders() throws IOException {
        try (Stream<Path> files = Files.list(out.resolve("checkpoints"))) {
            return files.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")).sorted()
                    .map(n -> n.replaceAll("\\.set-aside-.*", ".set-aside-*")).toList();
        }
    }

    @ParameterizedTest
    @EnumSource(Corruption.class)
    void aBrokenNewestCheckpointIsSetAsideOnResumeAndRewritten(Corruption corruption) throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        cps.write(state(1), weights("one"), 3);
        cps.write(state(2), weights("two"), 3);
        corruption.apply(out.resolve("checkpoints/iter-00000002"));
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        PrintStream progress = new PrintStream(text, true, StandardCharsets.UTF_8);

        RunCheckpoints.Checkpoint resumed = cps.resume(config("run-a", 1, 100), 1000, true, progress).orElseThrow();
        assertEquals(state(1), resumed.state());
        String said = text.toString(StandardCharsets.UTF_8);
        assertTrue(said.contains("checkpoint " + cps.root() + "/iter-00000002 is not complete (" + corruption.reason)
                && said.contains("): set aside as iter-00000002.set-aside-"), said);
        assertEquals(List.of("iter-00000001", "iter-00000002.set-aside-*"), checkpointFolders());

        // the resumed run writes checkpoint 2 again, where the broken one was
        cps.write(state(2), weights("TWO"), 3);
        RunCheckpoints.Checkpoint rewritten = cps.newestComplete().orElseThrow();
        assertEquals(state(2), rewritten.state());
        assertEquals("TWO", Files.readString(rewritten.localDir().resolve("actor/model.safetensors")));
        assertEquals(List.of("iter-00000001", "iter-00000002", "iter-00000002.set-aside-*"), checkpointFolders());
    }

    @Test
    void aWriteSetsAsideABrokenFolderInItsWayButNeverOverwritesACompleteOne() throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        // a fresh run (no --resume) over an output whose only checkpoint is broken: not refused
        cps.write(state(1), weights("one"), 3);
        Corruption.TRUNCATED_FILE.apply(out.resolve("checkpoints/iter-00000001"));
        assertTrue(cps.resume(config("run-a", 1, 100), 1000, false,
                new PrintStream(text, true, StandardCharsets.UTF_8)).isEmpty());
        cps.write(state(1), weights("ONE"), 3);
        assertTrue(text.toString(StandardCharsets.UTF_8).contains("iter-00000001 is not complete (actor/model.safetensors "
                + "has 2 bytes, _COMPLETE lists 3): set aside"), text.toString(StandardCharsets.UTF_8));
        assertEquals(List.of("iter-00000001", "iter-00000001.set-aside-*"), checkpointFolders());
        String exists = assertThrows(IllegalStateException.class, () -> cps.write(state(1), weights("again"), 3))
                .getMessage();
        assertTrue(exists.contains("iter-00000001 already exists"), exists);
        assertEquals("ONE", Files.readString(out.resolve("checkpoints/iter-00000001/actor/model.safetensors")));
    }

    @Test
    void setAsideFoldersAreRemovedWithTheCheckpointsOfTheirIterationUnderKeep() throws IOException {
        RunCheckpoints cps = new RunCheckpoints(out.toString(), new Configuration());
        cps.write(state(1), weights("one"), 2);
        cps.write(state(2), weights("two"), 2);
        Corruption.MISSING_MARKER.apply(out.resolve("checkpoints/iter-00000002"));
        assertEquals(1, cps.resume(config("run-a", 1, 100), 1000, true, System.out).orElseThrow().state().iteration());
        cps.write(state(2), weights("two"), 2);
        cps.write(state(3), weights("three"), 2);
        // keep 2: checkpoints 2 and 3; the broken 2 stays as long as a checkpoint 2 is kept
        assertEquals(List.of("iter-00000002", "iter-00000002.set-aside-*", "iter-00000003"), checkpointFolders());
        cps.write(state(4), weights("four"), 2);
        assertEquals(List.of("iter-00000003", "iter-00000004"), checkpointFolders());
    }
}
