package org.sparkrlhf.jobs.config;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.executor.EngineOptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The engine's settings in a run config's spark.conf are checked where they are written. */
class EngineSettingsConfigTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    private RunConfig read(String conf) throws IOException {
        Path file = dir.resolve("run.yaml");
        Files.writeString(file, """
                algorithm: sft
                output: /tmp/out
                models:
                  actor: {path: %s}
                data: {path: /tmp/sft.jsonl}
                spark:
                  master: local[1]
                  conf:
                %s
                """.formatted(TINY_LLAMA, conf));
        return new RunConfigReader(new Configuration()).read("file:" + file);
    }

    @Test
    void validSettingsPassThroughToTheSparkConf() throws IOException {
        RunConfig c = read("    spark.rlhf.engine.precision: bf16\n    spark.rlhf.engine.localGpu: 0");
        assertEquals("bf16", c.spark().conf().get(EngineOptions.PRECISION));
        assertEquals("0", c.spark().conf().get(EngineOptions.LOCAL_GPU));
    }

    @Test
    void badSettingsNameTheFileLineAndKey() {
        String precision = assertThrows(ConfigException.class,
                () -> read("    spark.ui.enabled: \"false\"\n    spark.rlhf.engine.precision: fp16")).getMessage();
        assertTrue(precision.contains("run.yaml:10: spark.conf.spark.rlhf.engine.precision: "
                + "spark.rlhf.engine.precision: 'fp16' is not a precision (fp32 or bf16)"), precision);
        String gpu = assertThrows(ConfigException.class,
                () -> read("    spark.rlhf.engine.localGpu: gpu0")).getMessage();
        assertTrue(gpu.contains("run.yaml:9: ") && gpu.contains("'gpu0' is not a CUDA device ordinal"), gpu);
    }
}
