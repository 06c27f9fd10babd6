package org.sparkrlhf.jobs.profile;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.train.RunOutput;
import org.sparkrlhf.jobs.train.TrainCommand;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.cost.RuntimeCosts;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spark-rlhf profile} on a GRPO config, embedded (local[2]), from the tiny fixture model: the
 * table lands next to the output and in the cache, reads back through the planner's reader, the
 * per-call overhead is measured, and the run's planning problem then uses both.
 */
class ProfileCommandTest {
    static final Path TINY_LLAMA = Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void profilesIntoTheOutputAndTheCacheAndThePlanUsesIt() throws Exception {
        Path out = dir.resolve("run");
        Path config = grpoConfig("profile-test", out, 1);
        Path cache = dir.resolve("cache");
        String before = System.getProperty(ProfileStore.CACHE_PROPERTY);
        System.setProperty(ProfileStore.CACHE_PROPERTY, cache.toString());
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            PrintStream progress = new PrintStream(bytes, true, StandardCharsets.UTF_8);
            assertEquals(0, ProfileCommand.run(new String[]{config.toString()}, progress, progress));
            String log = bytes.toString(StandardCharsets.UTF_8);
            assertTrue(log.contains("profile: an empty call over 2 devices"), log);

            RunConfig run = new RunConfigReader(new Configuration()).read(config.toString());
            String model = RunScenario.model(run, "actor").name();
            Path csv = out.resolve("profile").resolve(model + "-cpu.csv");
            ProfileTable table = ProfileTable.empty().read(csv);
            for (ProfileTable.Op op : ProfileTable.Op.values()) {
                double s = table.lookup(model, "cpu", op, 1, 16, 12);
                assertTrue(s > 0 && Double.isFinite(s), op + ": " + s);
            }
            RuntimeCosts costs = RuntimeCosts.parse("costs",
                    Files.readAllLines(out.resolve("profile").resolve(model + "-cpu.costs")));
            // measured, not a constant: positive and finite (its size is the machine's)
            assertTrue(costs.callOverhead() > 0 && Double.isFinite(costs.callOverhead()), costs.toString());
            // local[2]: two slots of one executor, so a rate inside an executor and none between two
            assertTrue(costs.reallocOverhead() > 0 && costs.reallocIntraParams() > 0, costs.toString());
            assertTrue(Double.isNaN(costs.reallocInterParams()), costs.toString());
            assertTrue(costs.allReduceIntra().measured() && !costs.allReduceInter().measured(), costs.toString());
            assertTrue(costs.microBatchOverhead() >= 0 && Double.isFinite(costs.microBatchOverhead()), costs.toString());
            // the optimizer step as timed on the engine (about 1e-8 s a parameter for the examples' model on two slots)
            assertTrue(costs.optimizerSecondsPerParam() > 1e-12 && costs.optimizerSecondsPerParam() < 1e-5, costs.toString());
            assertTrue(log.contains("profile: a reallocation takes"), log);
            // a real generation call against the estimate the stored table gives it: the extra per decoding
            // step, measured (0 only when the call came out no slower than its estimate)
            assertTrue(log.contains("profile: a generation call like actor_gen over the batch takes"), log);
            assertTrue(costs.decodeStepOverhead() >= 0 && Double.isFinite(costs.decodeStepOverhead()), costs.toString());
            // and a real train call like actor_train: the extra per optimizer step, split by the same call alone on each
            // slot into a part every step pays and a part per data-parallel peer
            assertTrue(log.contains("profile: a train call like actor_train over the batch takes"), log);
            assertTrue(log.contains("profile: a train call like actor_train alone on each device takes"), log);
            assertTrue(costs.trainStepOverhead() >= 0 && Double.isFinite(costs.trainStepOverhead()), costs.toString());
            assertTrue(costs.trainStepPerPeer() >= 0 && Double.isFinite(costs.trainStepPerPeer()), costs.toString());
            try (Stream<Path> files = Files.walk(cache)) {
                List<String> cached = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".csv")).toList();
                assertEquals(1, cached.size(), "actor and ref are one model: " + cached);
            }

            // the run plans with the table and the measured overhead, from the output or (output gone) the cache
            PlanningProblem p = RunScenario.problem(run, ClusterSpec.cpu(1, 2, 8L << 30));
            assertEquals(costs.callOverhead(), p.costModel().constants().callOverhead(), 1e-9);
            assertEquals(costs.microBatchOverhead(), p.costModel().constants().microBatchOverhead(), 1e-12);
            assertEquals(costs.optimizerSecondsPerParam(), p.costModel().constants().optimizerSecondsPerParam(), 1e-18);
            assertEquals(costs.reallocOverhead(), p.costModel().constants().reallocOverhead(), 1e-12);
            assertEquals(costs.decodeStepOverhead(), p.costModel().constants().decodeStepOverhead(), 1e-12);
            assertEquals(costs.trainStepOverhead(), p.costModel().constants().trainStepOverhead(), 1e-12);
            assertEquals(costs.trainStepPerPeer(), p.costModel().constants().trainStepPerPeer(), 1e-12);
            // inside the executor: the measured rate in the planner's bf16 bytes; between executors: the link's
            assertEquals(costs.reallocIntraParams() * 2, p.costModel().comm().reallocBandwidth(false), 1e-3);
            assertEquals(p.costModel().comm().interBandwidth(), p.costModel().comm().reallocBandwidth(true), 1e-3);
            assertEquals(table.lookup(model, "cpu", ProfileTable.Op.LAYER_FWD, 1, 24, 12),
                    p.costModel().compute().layerForward(p.model("actor"), 24, 12, 1), 1e-12);
            try (Stream<Path> files = Files.walk(out.resolve("profile"))) {
                files.sorted((a, b) -> b.compareTo(a)).forEach(f -> f.toFile().delete());
            }
            PlanningProblem fromCache = RunScenario.problem(run, ClusterSpec.cpu(1, 2, 8L << 30));
            assertEquals(costs.callOverhead(), fromCache.costModel().constants().callOverhead(), 1e-9);
            assertFalse(Files.exists(out.resolve("profile")));
        } finally {
            if (before == null) {
                System.clearProperty(ProfileStore.CACHE_PROPERTY);
            } else {
                System.setProperty(ProfileStore.CACHE_PROPERTY, before);
            }
        }
    }

    /**
     * Before a run whose tables come from an earlier application: the profile's passes, then its forward
     * and generation calls and the run's train call, real calls over the batch on every slot, whose
     * medians give this application's fixed costs, written next to the run's output over the table found
     * there (here a synthetic one, with a call overhead no call takes); then their models are gone from
     * the store.
     */
    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void warmUpRunsTheRunsKindsOfCallsAndLeavesNoModelBehind() throws Exception {
        Path out = dir.resolve("run");
        Path config = grpoConfig("warm-up-test", out, 2);
        RunConfig run = new RunConfigReader(new Configuration()).read(config.toString());
        String model = RunScenario.model(run, "actor").name();
        StringBuilder table = new StringBuilder("model,gpu,op,tp,tokens,context,seconds\n");
        for (ProfileTable.Op op : ProfileTable.Op.values()) {
            table.append(model).append(",cpu,").append(op.label()).append(",1,100000,64,1e-4\n");
        }
        RuntimeCosts earlier = new RuntimeCosts(10.0, 0, 0, 0.01, 1e7, Double.NaN, new RuntimeCosts.Link(1e-4, 1e8),
                RuntimeCosts.Link.NOT_MEASURED, 1e-8, 0, 0);
        String output = RunOutput.create(run);
        ProfileStore.storeInOutput(output, model, "cpu", table.toString(), earlier);
        SparkSession spark = TrainCommand.start(run);
        try (BarrierCallRunner runner = new BarrierCallRunner(spark.sparkContext(), false, false, 60_000L)) {
            ClusterInventory inventory = ClusterDiscovery.discover(spark.sparkContext(), runner, 60_000L);
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            RunProfiler.warmUp(run, output, runner, inventory, new PrintStream(bytes, true, StandardCharsets.UTF_8));
            String log = bytes.toString(StandardCharsets.UTF_8);
            assertTrue(log.contains("warm-up: the profile's passes of"), log);
            assertTrue(log.contains("warm-up: an empty call over 2 devices carrying the batch takes"), log);
            assertTrue(log.contains("warm-up: a forward call of"), log);
            assertTrue(log.contains("warm-up: a generation call like actor_gen over the batch takes"), log);
            assertTrue(log.contains("warm-up: a train call like actor_train over the batch takes"), log);
            assertTrue(log.contains("warm-up: a train call like actor_train alone on each device over the batch takes"), log);
            // this application's costs: the call overhead from its forward call, the steps' extras from its calls
            assertTrue(log.contains("warm-up: a forward call of " + model + " over the batch takes"), log);
            assertTrue(log.contains("warm-up: a train call like actor_train alone on each device takes"), log);
            assertTrue(log.contains("warm-up: this application's costs ->"), log);
            RuntimeCosts now = RuntimeCosts.parse("costs", Files.readAllLines(out.resolve("profile").resolve(model + "-cpu.costs")));
            assertTrue(now.callOverhead() < 1.0, now.toString());
            assertEquals(earlier.reallocOverhead(), now.reallocOverhead(), 0);
            assertTrue(now.trainStepOverhead() >= 0 && now.trainStepPerPeer() >= 0, now.toString());
            // embedded: the executor's store is this JVM's
            assertTrue(ModelStore.get().keys().stream().noneMatch(k -> k.role().startsWith("spark-rlhf-profile")),
                    ModelStore.get().keys().toString());
        } finally {
            spark.stop();
        }
    }

    /** A GRPO run of the tiny model over one prompt, embedded on two slots, with {@code epochs} epochs. */
    private Path grpoConfig(String name, Path out, int epochs) throws Exception {
        Files.writeString(dir.resolve("prompts.jsonl"), "{\"id\": \"q\", \"prompt\": \"1+2=\", \"reference\": \"3\"}\n");
        Path config = dir.resolve("grpo.yaml");
        Files.writeString(config, """
                name: %s
                algorithm: grpo
                seed: 5
                iterations: 1
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                reward: {function: arithmetic}
                data: {path: %s, batch_size: 2, max_prompt_tokens: 8}
                generation: {max_new_tokens: 4, temperature: 1.0}
                optimizer: {lr: 1.0e-3}
                grpo: {group_size: 4, epochs: %d}
                plan: {mode: baseline}
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(name, out, TINY_LLAMA, TINY_LLAMA, dir.resolve("prompts.jsonl"), epochs));
        return config;
    }
}
