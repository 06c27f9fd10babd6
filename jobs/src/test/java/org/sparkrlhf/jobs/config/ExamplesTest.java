package org.sparkrlhf.jobs.config;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** Every shipped example config passes validation (paths are relative to the repository root). */
class ExamplesTest {
    static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @Test
    void examplesAreValid() throws IOException {
        List<Path> examples;
        try (Stream<Path> files = Files.list(ROOT.resolve("examples"))) {
            examples = files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList();
        }
        assertFalse(examples.isEmpty());
        for (Path example : examples) {
            String text = Files.readString(example);
            // an example that starts from another example's output (runs/sft-arith-tiny/final) is
            // checked against the fixture model that example starts from
            text = text.replace("runs/sft-arith-tiny/final", "gpu-exec/src/test/resources/fixtures/tiny-llama");
            for (String top : List.of("gpu-exec/", "examples/", "runs/")) {
                text = text.replace(": " + top, ": " + ROOT.resolve(top) + "/").replace("{path: " + top, "{path: " + ROOT.resolve(top) + "/");
            }
            Path copy = dir.resolve(example.getFileName());
            Files.writeString(copy, text);
            RunConfig config = new RunConfigReader(new Configuration()).read(copy.toString());
            assertEquals(example.getFileName().toString().replace(".yaml", ""), config.name());
        }
    }
}
