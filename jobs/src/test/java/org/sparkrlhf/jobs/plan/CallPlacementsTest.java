package org.sparkrlhf.jobs.plan;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A run config turned into the planner's problem and into per-call placements, for every plan mode. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CallPlacementsTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    private Path config(String plan, String master) throws Exception {
        Files.writeString(dir.resolve("p.jsonl"), "{\"id\": \"a\", \"prompt\": \"1+1=\", \"reference\": \"2\"}\n");
        Path f = dir.resolve("run.yaml");
        Files.writeString(f, """
                name: plan-test
                algorithm: grpo
                seed: 3
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: 4, max_prompt_tokens: 16}
                generation: {max_new_tokens: 8}
                grpo: {group_size: 4, mini_batches: 2}
                %s
                spark: {master: "%s"}
                """.formatted(dir.resolve("out"), TINY_LLAMA, TINY_LLAMA, dir.resolve("p.jsonl"), plan, master));
        return f;
    }

    private RunConfig read(Path f) {
        return new RunConfigReader(new Configuration()).read(f.toString());
    }

    private static ClusterInventory cpus(int executors, int slots) {
        return RunPlanCommand.inventory(ClusterSpec.cpu(executors, slots, 1L << 30), false);
    }

    @Test
    void theScenarioHasTheRunsCallsModelsAndBatch() throws Exception {
        RunConfig c = read(config("plan: {mode: baseline}", "local[2]"));
        var problem = RunScenario.problem(c, RunScenario.cluster(c));
        // a reward function scores on the driver: no reward_inf call, no reward model
        assertEquals(List.of("actor_gen", "ref_inf", "actor_train"), problem.graph().calls().stream().map(ModelCall::name).toList());
        assertEquals(2, problem.graph().call(2).trainSteps());
        assertEquals(4, problem.model("actor").heads());
        assertEquals(2, problem.model("actor").kvHeads());
        assertEquals(16, problem.workload().promptLen());
        assertEquals(8, problem.workload().genLen());
        assertEquals(4L * 4 * 24, problem.workload().batchTokens());
        assertEquals(1, problem.cluster().nodes());
        assertEquals(2, problem.cluster().gpusPerNode());
        ClusterSpec cluster = RunScenario.cluster(read(config("plan: {mode: baseline}", "local-cluster[2,4,1024]")));
        assertEquals(2, cluster.nodes());
        assertEquals(4, cluster.gpusPerNode());
    }

    @Test
    void manualPlacementsKeepTheGivenDevicesAndLayouts() throws Exception {
        RunConfig c = read(config("""
                plan:
                  mode: manual
                  calls:
                    actor_train: {devices: [0, 1, 2, 3], tp: 2, pp: 2, micro_batches: 2}
                    actor_gen: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [2, 3], tp: 2}
                """, "local[1]"));
        CallPlacements p = CallPlacements.choose(c, cpus(2, 2));
        assertEquals(List.of("actor_gen", "ref_inf", "actor_train"), List.copyOf(p.placements().keySet()));
        Placement train = p.placement("actor_train");
        assertArrayEquals(new int[]{0, 1, 2, 3}, train.deviceIndices());
        assertEquals("dp1.tp2.pp2@0,1,2,3", train.key());
        assertEquals(train, p.home("actor"));
        assertEquals(p.placement("ref_inf"), p.home("ref"));
        // Megatron order: tensor rank fastest, then data rank, then stage
        assertEquals(1, train.stageOf(2));
        assertEquals(1, train.tensorRankOf(3));
        assertTrue(Double.isFinite(p.estimatedIterationSeconds()), p.describe());
        assertTrue(p.planJson().contains("\"ref_inf\""), p.planJson());

        // the plans-table row places each call in the simulator's schedule of an iteration
        List<PlanRow.CallTiming> calls = p.planRow(Map.of("actor_gen", 1.0), 2.0, Instant.EPOCH).calls();
        assertEquals(List.of("actor_gen", "ref_inf", "actor_train"), calls.stream().map(PlanRow.CallTiming::call).toList());
        for (PlanRow.CallTiming t : calls) {
            assertEquals(t.estimatedSeconds(), t.estimatedEnd() - t.estimatedStart(), 1e-9, t.toString());
        }
        assertEquals(1.0, calls.get(0).measuredSeconds());
        assertNull(calls.get(1).measuredSeconds());
        // actor_gen runs after the actor's parameters moved to its layout; ref_inf reads its samples,
        // actor_train the reference log-probs; the last call ends the iteration (its steady-state period)
        assertTrue(calls.get(0).estimatedStart() > 0, calls.toString());
        assertTrue(calls.get(1).estimatedStart() >= calls.get(0).estimatedEnd(), calls.toString());
        assertTrue(calls.get(2).estimatedStart() >= calls.get(1).estimatedEnd(), calls.toString());
        assertEquals(p.estimatedIterationSeconds(), calls.get(2).estimatedEnd(), 1e-9 * p.estimatedIterationSeconds());
    }

    @Test
    void baselineSearchAndPlanFileGiveValidPlacements() throws Exception {
        ClusterInventory inventory = cpus(2, 2);
        CallPlacements baseline = CallPlacements.choose(read(config("plan: {mode: baseline}", "local[1]")), inventory);
        for (Placement pl : baseline.placements().values()) {
            assertEquals(4, pl.dp(), pl.toString());
        }
        CallPlacements searched = CallPlacements.choose(read(config("plan: {mode: search, search_seconds: 0.5}",
                "local[1]")), inventory);
        for (Placement pl : searched.placements().values()) {
            assertEquals(pl.size(), pl.dp() * pl.tp() * pl.pp());
            assertTrue(4 % pl.tp() == 0 && pl.tp() <= 2, pl.toString());
        }
        assertTrue(searched.estimatedIterationSeconds() <= baseline.estimatedIterationSeconds() * (1 + 1e-9),
                searched.describe() + baseline.describe());
        // the searched plan written as JSON and read back as a plan file is the same plan
        Path planFile = dir.resolve("plan.json");
        Files.writeString(planFile, searched.planJson());
        CallPlacements fromFile = CallPlacements.choose(read(config("plan: {mode: file, file: " + planFile + "}",
                "local[1]")), inventory);
        for (String call : searched.placements().keySet()) {
            assertTrue(searched.placement(call).holdsSameShardsAs(fromFile.placement(call)), call);
        }
    }

    /** The engine keeps whole data-parallel replicas: a plan file or a manual layout with ZeRO-3 is refused, naming the call. */
    @Test
    void zero3LayoutsAreRefusedNamingTheCall() throws Exception {
        ClusterInventory inventory = cpus(2, 2);
        CallPlacements baseline = CallPlacements.choose(read(config("plan: {mode: baseline}", "local[1]")), inventory);
        Path planFile = dir.resolve("zero3.json");
        String json = baseline.planJson();
        int train = json.indexOf("\"actor_train\"");
        String off = "\"zero3\" : false";
        int flag = json.indexOf(off, train);
        assertTrue(train > 0 && flag > train, json);
        Files.writeString(planFile, json.substring(0, flag) + "\"zero3\" : true" + json.substring(flag + off.length()));
        RunConfig fromFile = read(config("plan: {mode: file, file: " + planFile + "}", "local[1]"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CallPlacements.choose(fromFile, inventory));
        assertTrue(e.getMessage().contains(planFile.toString()) && e.getMessage().contains("call actor_train")
                && e.getMessage().contains("ZeRO-3"), e.getMessage());
        // nor does the search choose one
        CallPlacements searched = CallPlacements.choose(read(config("plan: {mode: search, search_seconds: 0.5}",
                "local[1]")), inventory);
        assertTrue(!searched.planJson().contains("\"zero3\" : true"), searched.planJson());

        Path manual = config("""
                plan:
                  mode: manual
                  calls:
                    actor_train: {devices: [0, 1, 2, 3], dp: 4, zero3: true}
                    actor_gen: {devices: [0]}
                    ref_inf: {devices: [0]}
                """, "local[1]");
        ConfigException m = assertThrows(ConfigException.class, () -> read(manual));
        assertTrue(m.getMessage().contains(manual.toString()) && m.getMessage().contains("plan.calls.actor_train.zero3")
                && m.getMessage().contains("ZeRO-3"), m.getMessage());
    }

    @Test
    void aManualDeviceOutsideTheClusterIsAClearError() throws Exception {
        RunConfig c = read(config("""
                plan:
                  mode: manual
                  calls:
                    actor_train: {devices: [4]}
                    actor_gen: {devices: [0]}
                    ref_inf: {devices: [0]}
                """, "local[1]"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CallPlacements.choose(c, cpus(2, 2)));
        assertTrue(e.getMessage().contains("plan.calls.actor_train.devices: no device 4"), e.getMessage());
    }

    @Test
    void planCommandPrintsTheRunsPlan() throws Exception {
        Path f = config("plan: {mode: baseline}", "local-cluster[2,2,1024]");
        assertTrue(RunPlanCommand.isRunConfig(new String[]{"--config", f.toString()}));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = RunPlanCommand.run(new String[]{"--config", f.toString(), "--json"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
        String json = out.toString(StandardCharsets.UTF_8);
        assertTrue(json.contains("\"gpus\" : [ 0, 1, 2, 3 ]"), json);
        assertTrue(json.contains("\"algorithm\" : \"grpo\""), json);
    }
}
