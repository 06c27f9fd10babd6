package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.CallSpan;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.plan.CallPlacement;
import org.sparkrlhf.planner.plan.ExecutionPlan;
import org.sparkrlhf.planner.plan.PlanEvaluation;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.TimelineEvent;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The schedule a PPO run executes is the one the planner's simulator assumes for the same plan. Three
 * manual plans on local[2] (devices 0 and 1); in the first two every model's calls share one layout,
 * so that no reallocation runs; in the third the actor and the critic move between layouts:
 * <pre>
 *                 disjoint       overlapping    reallocating
 *   actor_gen     dp2 on 0,1     dp2 on 0,1     dp2 on 0,1
 *   reward_inf    on 0           dp2 on 0,1     dp2 on 0,1
 *   ref_inf       on 1           on 1           on 1
 *   critic_inf    dp2 on 0,1     on 0           on 0
 *   actor_train   dp2 on 0,1     dp2 on 0,1     tp2 on 0,1
 *   critic_train  dp2 on 0,1     on 0           on 1
 * </pre>
 * In the first, reward_inf and ref_inf run at the same time and critic_inf waits for both; in the
 * second, reward_inf holds both devices, then ref_inf and critic_inf run at the same time. In the
 * third, the first iteration is the second's schedule (critic_inf loads the critic on device 0, and
 * critic_train takes it from there); from the second iteration on, critic_inf takes the trained critic
 * from device 1, which sends it, so critic_inf's reallocation waits for ref_inf there instead of
 * overlapping it. For every pair of calls of an iteration the run's relation (one ended before the
 * other started, or they overlapped; a call's span includes the reallocation before it) must be the
 * simulator's, iteration by iteration, and an iteration starts after the previous one ended in both.
 * Wall times are not compared: the simulator's durations are estimates for GPUs, and the orders and
 * overlaps it derives from the dependencies and devices must hold anyway.
 */
class ScheduleMatchesSimulatorTest {
    private static final int ITERATIONS = 2;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 540, unit = TimeUnit.SECONDS)
    void runExecutesTheSimulatedOrderAndOverlaps() throws Exception {
        StringBuilder jsonl = new StringBuilder();
        for (int a = 1; a <= 3; a++) {
            for (int b = 1; b <= 3; b++) {
                jsonl.append("{\"id\": \"q%d%d\", \"prompt\": \"%d+%d=\", \"reference\": \"%d\"}\n".formatted(a, b, a, b, a + b));
            }
        }
        Files.writeString(dir.resolve("prompts.jsonl"), jsonl);
        RunConfig disjoint = EmbeddedRun.config(config("disjoint", """
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0]}
                    ref_inf: {devices: [1]}
                    critic_inf: {devices: [0, 1], dp: 2}
                    actor_train: {devices: [0, 1], dp: 2}
                    critic_train: {devices: [0, 1], dp: 2}
                """));
        RunConfig overlapping = EmbeddedRun.config(config("overlapping", """
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [1]}
                    critic_inf: {devices: [0]}
                    actor_train: {devices: [0, 1], dp: 2}
                    critic_train: {devices: [0]}
                """));
        RunConfig reallocating = EmbeddedRun.config(config("reallocating", """
                    actor_gen: {devices: [0, 1], dp: 2}
                    reward_inf: {devices: [0, 1], dp: 2}
                    ref_inf: {devices: [1]}
                    critic_inf: {devices: [0]}
                    actor_train: {devices: [0, 1], tp: 2}
                    critic_train: {devices: [1]}
                """));
        try (EmbeddedRun run = EmbeddedRun.start(disjoint)) {
            Map<String, String> first = compare(run, disjoint, false).get(0);
            assertEquals("overlap", first.get("reward_inf|ref_inf"), first.toString());
            assertEquals("before", first.get("reward_inf|critic_inf"), first.toString());
            assertEquals("before", first.get("ref_inf|critic_inf"), first.toString());
            Map<String, String> second = compare(run, overlapping, false).get(0);
            assertEquals("before", second.get("reward_inf|ref_inf"), second.toString());
            assertEquals("before", second.get("reward_inf|critic_inf"), second.toString());
            assertEquals("overlap", second.get("ref_inf|critic_inf"), second.toString());
            assertEquals("before", second.get("actor_train|critic_train"), second.toString());
            List<Map<String, String>> third = compare(run, reallocating, true);
            assertEquals("overlap", third.get(0).get("ref_inf|critic_inf"), third.toString());
            assertEquals("before", third.get(1).get("ref_inf|critic_inf"), third.toString());
            assertEquals("before", third.get(1).get("actor_train|critic_train"), third.toString());
        }
    }

    /**
     * Runs {@code config}'s PPO with the run's schedule recorded, simulates its plan (which reallocates
     * models or not, as {@code reallocates} says), asserts that every iteration's pairwise relations are
     * the same in both, and returns them, iteration by iteration.
     */
    private static List<Map<String, String>> compare(EmbeddedRun run, RunConfig config, boolean reallocates) {
        DataflowGraph graph = RunScenario.graph(config);
        ScheduleRecorder spec = new ScheduleRecorder(AlgorithmSpecs.of(config));
        PrintStream progress = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        RunDriver.run(run.spark(), config, graph, spec, run.runner(), run.inventory(), progress, false);

        // the plan the run used, as the planner sees it
        CallPlacements plan = CallPlacements.choose(config, graph, run.inventory(),
                new PrintStream(OutputStream.nullOutputStream()));
        List<CallPlacement> placements = new ArrayList<>();
        for (Placement p : plan.placements().values()) {
            placements.add(new CallPlacement(p.call(), p.mesh(), p.strategy()));
        }
        ClusterSpec cluster = RunScenario.cluster(run.inventory(), RunScenario.gpuPreset(config));
        SimResult sim = PlanEvaluation.evaluate(RunScenario.problem(config, graph, cluster),
                new ExecutionPlan(graph.algorithm(), placements));
        assertTrue(sim.feasible(), sim.infeasibleReason());
        assertEquals(reallocates, sim.timeline().stream().anyMatch(TimelineEvent::reallocation), sim.timeline().toString());

        List<String> calls = graph.calls().stream().map(ModelCall::name).toList();
        assertEquals(ITERATIONS, spec.schedules.size());
        List<Map<String, String>> all = new ArrayList<>();
        double previousSimulatedEnd = Double.NEGATIVE_INFINITY;
        long previousRunEnd = Long.MIN_VALUE;
        for (Map.Entry<Integer, List<CallSpan>> e : spec.schedules.entrySet()) {
            int iteration = e.getKey();
            Map<String, double[]> ran = new LinkedHashMap<>();
            for (CallSpan s : e.getValue()) {
                if (!s.hook()) {
                    ran.put(s.name(), new double[]{s.startNanos(), s.endNanos()});
                }
            }
            // a call's span from the start of the reallocation before it, as the run's spans are
            Map<String, double[]> simulated = new LinkedHashMap<>();
            Map<String, Double> reallocStart = new LinkedHashMap<>();
            for (TimelineEvent t : sim.timeline()) {
                if (t.iteration() == iteration - 1 && t.reallocation()) {
                    reallocStart.put(t.label().substring(t.label().indexOf("-> ") + 3), t.start());
                } else if (t.iteration() == iteration - 1) {
                    simulated.put(t.label(), new double[]{reallocStart.getOrDefault(t.label(), t.start()), t.end()});
                }
            }
            assertEquals(new java.util.TreeSet<>(calls), new java.util.TreeSet<>(ran.keySet()), "iteration " + iteration);
            assertEquals(new java.util.TreeSet<>(calls), new java.util.TreeSet<>(simulated.keySet()),
                    "simulated iteration " + (iteration - 1));
            Map<String, String> runRelations = relations(calls, ran);
            Map<String, String> simRelations = relations(calls, simulated);
            assertEquals(simRelations, runRelations, config.name() + " iteration " + iteration + ": simulated "
                    + describe(simulated) + ", ran " + describe(ran));
            // an iteration starts when the previous one has ended, in the simulator as in the run
            double simStart = simulated.values().stream().mapToDouble(x -> x[0]).min().orElseThrow();
            long runStart = (long) ran.values().stream().mapToDouble(x -> x[0]).min().orElseThrow();
            assertTrue(simStart >= previousSimulatedEnd && runStart > previousRunEnd, "iteration " + iteration);
            previousSimulatedEnd = simulated.values().stream().mapToDouble(x -> x[1]).max().orElseThrow();
            previousRunEnd = (long) ran.values().stream().mapToDouble(x -> x[1]).max().orElseThrow();
            System.out.printf("%s iteration %d: %s%n", config.name(), iteration, runRelations);
            all.add(runRelations);
        }
        return all;
    }

    /**
     * For each pair a, b of calls (a before b in the graph's order): "before" when a ended no later than
     * b started, "after" when b ended no later than a started, else "overlap".
     */
    static Map<String, String> relations(List<String> calls, Map<String, double[]> spans) {
        Map<String, String> out = new TreeMap<>();
        for (int i = 0; i < calls.size(); i++) {
            for (int j = i + 1; j < calls.size(); j++) {
                double[] a = spans.get(calls.get(i));
                double[] b = spans.get(calls.get(j));
                String r = a[1] <= b[0] ? "before" : b[1] <= a[0] ? "after" : "overlap";
                out.put(calls.get(i) + "|" + calls.get(j), r);
            }
        }
        return out;
    }

    private static String describe(Map<String, double[]> spans) {
        StringBuilder s = new StringBuilder("{");
        double origin = spans.values().stream().mapToDouble(x -> x[0]).min().orElse(0);
        spans.forEach((k, v) -> s.append(String.format(" %s [%.4g, %.4g]", k, v[0] - origin, v[1] - origin)));
        return s.append(" }").toString();
    }

    private Path config(String name, String calls) throws Exception {
        Path config = dir.resolve(name + ".yaml");
        Files.writeString(config, """
                name: %s
                algorithm: ppo
                seed: 7
                iterations: %d
                output: %s
                models:
                  actor: {path: %s}
                  ref: {path: %s}
                  critic: {path: %s}
                  reward: {path: %s}
                data: {path: %s, batch_size: 4, eval_size: 0, max_prompt_tokens: 16}
                generation: {max_new_tokens: 3, temperature: 1.0}
                optimizer: {lr: 1.0e-3, weight_decay: 0.0}
                ppo: {epochs: 1, mini_batches: 2, gamma: 0.9, lambda: 0.8, critic_lr: 1.0e-3,
                      kl: {type: adaptive, coef: 0.2, target: 0.5, horizon: 100, estimator: k3}}
                plan:
                  mode: manual
                  calls:
                %s
                spark:
                  master: local[2]
                  conf: {spark.ui.enabled: "false", spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(name, ITERATIONS, dir.resolve(name), SftTrainingTest.TINY_LLAMA, SftTrainingTest.TINY_LLAMA,
                PpoTrainingTest.TINY_REWARD, PpoTrainingTest.TINY_REWARD, dir.resolve("prompts.jsonl"), calls.stripTrailing()));
        return config;
    }

    /** A run's own spec, which also keeps each iteration's executed schedule ({@link Keys#schedule}). */
    static final class ScheduleRecorder implements AlgorithmSpec {
        private final AlgorithmSpec spec;
        final Map<Integer, List<CallSpan>> schedules = new TreeMap<>();

        ScheduleRecorder(AlgorithmSpec spec) {
            this.spec = spec;
        }

        @Override
        public Report report(RunContext run, Keys keys, TrainingData data) {
            schedules.put(keys.iteration(), keys.schedule());
            return spec.report(run, keys, data);
        }

        @Override
        public int group(RunConfig config) {
            return spec.group(config);
        }

        @Override
        public Map<String, CallBinding> bindings(RunConfig config) {
            return spec.bindings(config);
        }

        @Override
        public Map<String, Hook> hooks(RunConfig config) {
            return spec.hooks(config);
        }

        @Override
        public RunConfig.OptimizerConfig optimizer(RunConfig config, String role) {
            return spec.optimizer(config, role);
        }

        @Override
        public String tokenizerRole() {
            return spec.tokenizerRole();
        }

        @Override
        public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special,
                                 String output) {
            return spec.data(spark, config, tokenizerDir, special, output);
        }

        @Override
        public boolean writesRollouts() {
            return spec.writesRollouts();
        }

        @Override
        public Optional<Evaluation> evaluation(RunConfig config, TrainingData data) {
            return spec.evaluation(config, data);
        }

        @Override
        public double checkpointCoef() {
            return spec.checkpointCoef();
        }

        @Override
        public void restore(Optional<RunState> state) {
            spec.restore(state);
        }
    }
}
