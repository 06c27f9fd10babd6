package org.sparkrlhf.jobs.config;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** generation.speculative: read with its defaults, and every bad value a file:line error. */
class S3dSpeculativeConfigTest {
    @TempDir
    Path dir;

    private RunConfig read(String generation) throws IOException {
        Path model = dir.resolve("tiny");
        Files.createDirectories(model);
        Files.writeString(model.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128}
                """);
        Path file = dir.resolve("run.yaml");
        Files.writeString(file, """
                name: s3d-test
                algorithm: grpo
                iterations: 1
                output: /tmp/out
                models:
                  actor: {path: MODEL}
                  ref: {path: MODEL}
                reward: {function: arithmetic}
                data: {task: arithmetic, batch_size: 4}
                grpo: {group_size: 2}
                generation:
                  max_new_tokens: 8
                """.replace("MODEL", model.toString()) + generation);
        return new RunConfigReader(new Configuration()).read("file:" + file);
    }

    private String error(String generation) {
        return assertThrows(ConfigException.class, () -> read(generation)).getMessage();
    }

    @Test
    void readsSpeculativeWithDefaults() throws IOException {
        assertNull(read("").generation().speculative());
        RunConfig.SpeculativeConfig s = read("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3}\n")
                .generation().speculative();
        assertEquals(new RunConfig.SpeculativeConfig("s3d", 1, 2, 3, 4, 0.01, 0.5), s);
        s = read("  speculative: {method: s3d, skip_from: 0, skip_to: 1, draft_tokens: 2, train_steps: 0, "
                + "train_lr: 0.1, acceptance: 0.8}\n").generation().speculative();
        assertEquals(new RunConfig.SpeculativeConfig("s3d", 0, 1, 2, 0, 0.1, 0.8), s);
    }

    @Test
    void badValuesNameTheirLine() {
        String e = error("  speculative: {method: medusa, skip_from: 1, skip_to: 2, draft_tokens: 3}\n");
        assertTrue(e.contains("run.yaml:13:") && e.contains("unknown speculative decoding method 'medusa'"), e);
        e = error("  speculative: {method: s3d, skip_from: 2, skip_to: 1, draft_tokens: 3}\n");
        assertTrue(e.contains("run.yaml:13:") && e.contains("skip_to") && e.contains("must be >= skip_from"), e);
        e = error("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 0}\n");
        assertTrue(e.contains("draft_tokens") && e.contains("must be > 0"), e);
        e = error("  speculative: {method: s3d, skip_to: 2, draft_tokens: 3}\n");
        assertTrue(e.contains("skip_from") && e.contains("required"), e);
        e = error("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3, acceptance: 1.5}\n");
        assertTrue(e.contains("acceptance") && e.contains("[0, 1]"), e);
        // the tiny actor has 2 layers
        e = error("  speculative: {method: s3d, skip_from: 1, skip_to: 3, draft_tokens: 3}\n");
        assertTrue(e.contains("run.yaml:13:") && e.contains("skip_to") && e.contains("actor with 2 layers"), e);
        e = error("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3, draft: 1}\n");
        assertTrue(e.contains("unknown key"), e);
    }

    @Test
    void aDraftThatTrainsIsAnS3dTrainCallOfTheRunsGraph() throws IOException {
        var graph = org.sparkrlhf.jobs.plan.RunScenario.graph(
                read("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3, train_steps: 5}\n"));
        var call = graph.call(graph.indexOf("s3d_train"));
        assertEquals(org.sparkrlhf.planner.graph.CallKind.DRAFT_TRAIN, call.kind());
        assertEquals("actor", call.role());
        assertEquals(5, call.trainSteps());
        assertEquals("actor", Algorithm.roleOf("s3d_train"));
        // a draft that does not train, and plain decoding: no such call
        for (String generation : new String[]{"", "  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3, "
                + "train_steps: 0}\n"}) {
            assertTrue(org.sparkrlhf.jobs.plan.RunScenario.graph(read(generation)).calls().stream()
                    .noneMatch(c -> c.name().equals("s3d_train")), generation);
        }
        RunConfig.SpeculativeConfig sp = read("  speculative: {method: s3d, skip_from: 1, skip_to: 2, draft_tokens: 3}\n")
                .generation().speculative();
        assertEquals(java.util.List.of("actor_gen", "ref_inf", "actor_train", "s3d_train"),
                RunConfigReader.callsOf(Algorithm.GRPO, new RunConfig.RewardConfig("arithmetic", 5.0), java.util.Map.of(), sp));
    }
}
