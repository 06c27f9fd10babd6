package org.sparkrlhf.jobs.checkpoint;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
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
}
