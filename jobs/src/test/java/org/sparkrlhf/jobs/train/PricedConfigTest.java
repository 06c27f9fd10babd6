package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.planner.spec.Workload;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The planner prices a run at its data's longest prompt and answer, not at the config's bounds. */
class PricedConfigTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    private RunConfig example(String name) throws IOException {
        String text = Files.readString(ROOT.resolve("examples/" + name + ".yaml"))
                .replace("runs/sft-arith-tiny/final", ROOT.resolve("gpu-exec/src/test/resources/fixtures/tiny-llama").toString())
                .replace("path: examples/", "path: " + ROOT.resolve("examples") + "/")
                .replace("path: gpu-exec/", "path: " + ROOT.resolve("gpu-exec") + "/");
        Path copy = dir.resolve(name + ".yaml");
        Files.writeString(copy, text);
        return new RunConfigReader(new Configuration()).read(copy.toString());
    }

    private static TrainingData withLengths(int prompt, int answer) {
        return new TrainingData() {
            public int size() {
                return 1;
            }

            public void batch(List<Integer> picked, Keys keys) {
            }

            public String describe() {
                return "test";
            }

            public Lengths lengths() {
                return new Lengths(prompt, answer);
            }
        };
    }

    @Test
    void generatedAnswersArePricedAtTheLongestPromptAndTheNewTokenBound() throws IOException {
        RunConfig config = example("grpo-arith-tiny");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        RunConfig priced = RunDriver.pricedConfig(config, withLengths(5, TrainingData.Lengths.GENERATED),
                new PrintStream(out, true, StandardCharsets.UTF_8));
        Workload w = RunScenario.workload(priced);
        assertEquals(5, w.promptLen());
        assertEquals(config.generation().maxNewTokens(), w.genLen());
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("prompts of 5 tokens (max_prompt_tokens 16)"), out.toString());
        // the run keeps its bounds
        assertEquals(16, config.data().maxPromptTokens());
    }

    @Test
    void aPromptLongerThanTheBoundIsPricedAtTheBoundAndSftExamplesWhole() throws IOException {
        RunConfig grpo = example("grpo-arith-tiny");
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        assertEquals(16, RunScenario.workload(RunDriver.pricedConfig(grpo, withLengths(40, -1), quiet)).promptLen());
        // an SFT example is prompt and answer together: priced whole, beyond max_prompt_tokens if it is longer
        RunConfig sft = example("sft-arith-tiny");
        Workload w = RunScenario.workload(RunDriver.pricedConfig(sft, withLengths(sft.data().maxPromptTokens() + 2, 0), quiet));
        assertEquals(sft.data().maxPromptTokens() + 2, w.promptLen());
        assertEquals(0, w.genLen());
    }
}
