package org.sparkrlhf.jobs.plan;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A GRPO run whose rewards come from a reward model ({@code models.reward}) as the planner sees it:
 * its graph has the reward model's inference call, beside ref_inf after actor_gen, every plan mode
 * places it, and {@code spark-rlhf plan --config} shows it.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class GrpoRewardModelPlanTest {
    static final Path TINY_LLAMA = CallPlacementsTest.TINY_LLAMA;
    static final Path TINY_REWARD = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama-reward")
            .toAbsolutePath().normalize();

    @TempDir
    Path dir;

    private Path config(String plan, String master) throws Exception {
        Files.writeString(dir.resolve("p.jsonl"), "{\"id\": \"a\", \"prompt\": \"1+1=\"}\n");
        Path f = dir.resolve("run.yaml");
        Files.writeString(f, """
                name: plan-rm-test
                algorithm: grpo
                seed: 3
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  reward: {path: %s}
                data: {path: %s, batch_size: 4, max_prompt_tokens: 16}
                generation: {max_new_tokens: 8}
                grpo: {group_size: 4, mini_batches: 2}
                %s
                spark: {master: "%s"}
                """.formatted(dir.resolve("out"), TINY_LLAMA, TINY_LLAMA, TINY_REWARD, dir.resolve("p.jsonl"), plan,
                master));
        return f;
    }

    private RunConfig read(Path f) {
        return new RunConfigReader(new Configuration()).read(f.toString());
    }

    private static ClusterInventory cpus(int executors, int slots) {
        return RunPlanCommand.inventory(ClusterSpec.cpu(executors, slots, 1L << 30), false);
    }

    @Test
    void theGraphHasTheRewardModelsCallBesideRefInf() throws Exception {
        RunConfig c = read(config("plan: {mode: baseline}", "local[2]"));
        PlanningProblem problem = RunScenario.problem(c, RunScenario.cluster(c));
        DataflowGraph g = problem.graph();
        assertEquals(List.of("actor_gen", "reward_inf", "ref_inf", "actor_train"),
                g.calls().stream().map(ModelCall::name).toList());
        assertEquals("reward", g.call(g.indexOf("reward_inf")).role());
        // reward_inf and ref_inf read only actor_gen's output, so the scheduler may run them at the same time;
        // actor_train reads both
        int gen = g.indexOf("actor_gen");
        assertArrayEquals(new int[]{gen}, g.dependencies(g.indexOf("reward_inf")));
        assertArrayEquals(new int[]{gen}, g.dependencies(g.indexOf("ref_inf")));
        int[] train = g.dependencies(g.indexOf("actor_train"));
        assertTrue(contains(train, g.indexOf("reward_inf")) && contains(train, g.indexOf("ref_inf")),
                java.util.Arrays.toString(train));
        // the reward model is costed with its one-output score head, not a vocabulary head
        assertEquals(1, problem.model("reward").outputDim());
        assertEquals(List.of("actor", "reward", "ref"), g.roles());
    }

    @Test
    void everyPlanModePlacesRewardInf() throws Exception {
        ClusterInventory inventory = cpus(2, 2);
        CallPlacements baseline = CallPlacements.choose(read(config("plan: {mode: baseline}", "local[1]")), inventory);
        CallPlacements searched = CallPlacements.choose(read(config("plan: {mode: search, search_seconds: 0.5}",
                "local[1]")), inventory);
        Path planFile = dir.resolve("plan.json");
        Files.writeString(planFile, searched.planJson());
        CallPlacements fromFile = CallPlacements.choose(read(config("plan: {mode: file, file: " + planFile + "}",
                "local[1]")), inventory);
        CallPlacements manual = CallPlacements.choose(read(config("""
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0, 1, 2, 3], dp: 4}
                    reward_inf: {devices: [0, 1], tp: 2}
                    ref_inf: {devices: [2, 3], dp: 2}
                    actor_train: {devices: [0, 1, 2, 3], dp: 4}
                """, "local[1]")), inventory);
        for (CallPlacements p : List.of(baseline, searched, fromFile, manual)) {
            assertEquals(List.of("actor_gen", "reward_inf", "ref_inf", "actor_train"),
                    List.copyOf(p.placements().keySet()), p.describe());
            Placement reward = p.placement("reward_inf");
            assertEquals("reward", reward.role());
            assertEquals(reward.size(), reward.dp() * reward.tp() * reward.pp(), reward.toString());
            assertEquals(reward, p.home("reward"));
            assertTrue(p.planJson().contains("\"reward_inf\""), p.planJson());
        }
        assertEquals(4, baseline.placement("reward_inf").dp());
        assertTrue(searched.placement("reward_inf").holdsSameShardsAs(fromFile.placement("reward_inf")));
        Placement manualReward = manual.placement("reward_inf");
        assertArrayEquals(new int[]{0, 1}, manualReward.deviceIndices());
        assertEquals(2, manualReward.tp());
        assertTrue(Double.isFinite(manual.estimatedIterationSeconds()), manual.describe());
    }

    @Test
    void aManualPlanWithoutRewardInfIsAClearError() throws Exception {
        Path f = config("""
                plan:
                  mode: manual
                  calls:
                    actor_gen: {devices: [0]}
                    ref_inf: {devices: [0]}
                    actor_train: {devices: [0]}
                """, "local[1]");
        ConfigException e = assertThrows(ConfigException.class, () -> read(f));
        assertTrue(e.getMessage().contains("plan.calls.reward_inf: missing"), e.getMessage());
    }

    @Test
    void planCommandShowsTheRewardCall() throws Exception {
        Path f = config("plan: {mode: baseline}", "local-cluster[2,2,1024]");
        for (boolean json : new boolean[]{false, true}) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            String[] args = json ? new String[]{"--config", f.toString(), "--json"} : new String[]{"--config", f.toString()};
            int code = RunPlanCommand.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                    new PrintStream(err, true, StandardCharsets.UTF_8));
            assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
            String text = out.toString(StandardCharsets.UTF_8);
            assertTrue(json ? text.contains("\"reward_inf\"") : text.contains("reward_inf   reward"), text);
        }
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) {
            if (x == v) {
                return true;
            }
        }
        return false;
    }
}
