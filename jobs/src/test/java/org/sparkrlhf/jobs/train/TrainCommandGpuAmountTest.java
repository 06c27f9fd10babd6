package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@code spark-rlhf train} with a fractional {@code spark.task.resource.gpu.amount}: two tasks would
 * share one GPU's CUDA backend; refused before Spark starts (exit 2, no session, nothing written).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TrainCommandGpuAmountTest {
    @TempDir
    Path dir;

    @Test
    void aFractionOfAGpuPerTaskIsRefusedBeforeSpark() throws IOException {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"id\": \"q1\", \"prompt\": \"1+1=\", \"answer\": \"2\", \"reference\": \"2\"}\n");
        Path yaml = dir.resolve("sft.yaml");
        Files.writeString(yaml, """
                name: shared-gpu
                algorithm: sft
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                data: {path: %s, batch_size: 1}
                spark:
                  master: "local-cluster[1,2,1024]"
                  conf:
                    spark.executor.resource.gpu.amount: "1"
                    spark.task.resource.gpu.amount: "0.5"
                """.formatted(dir.resolve("run"), SftTrainingTest.TINY_LLAMA, data));
        String message = TrainCommandModelFoldersTest.refusedBeforeSpark(yaml, dir.resolve("run"));
        assertEquals("spark-rlhf train: spark.task.resource.gpu.amount=0.5 would run two tasks on one GPU at once, and "
                + "they would share its CUDA backend, which one thread at a time may use (one stream, one decode graph "
                + "captured at a time); set spark.task.resource.gpu.amount=1: a rank needs a GPU to itself\n", message);
    }
}
