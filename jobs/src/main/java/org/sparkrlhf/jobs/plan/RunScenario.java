package org.sparkrlhf.jobs.plan;

import org.apache.spark.SparkConf;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.Algorithm;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.profile.ProfileStore;
import org.sparkrlhf.jobs.profile.RunProfiler;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Speculation;
import org.sparkrlhf.planner.spec.Workload;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A run config as the planner's problem: the algorithm's dataflow graph (without reward_inf when
 * rewards come from a function on the driver), the model of every role from its HF config.json,
 * the cluster (from the discovered devices, or, before any Spark starts, from the config's master),
 * and one iteration's batch.
 *
 * <p>Cluster: GPU executors are grouped by host (a node: devices that share NVLink); CPU task slots
 * by executor (slots of one executor share memory, executors talk over the network), with the
 * planner's {@code cpu} preset. The planner's clusters are homogeneous, so every node must have the
 * same power-of-two number of devices. GPUs are taken as the {@code spark.rlhf.gpu} preset of the
 * config's Spark conf ({@code h100} unless given).
 */
public final class RunScenario {
    private RunScenario() {
    }

    /** The planning problem of {@code config} on {@code cluster}. */
    public static PlanningProblem problem(RunConfig config, ClusterSpec cluster) {
        return problem(config, graph(config), cluster);
    }

    /** The planning problem of {@code graph} with the models and batch of {@code config}. */
    public static PlanningProblem problem(RunConfig config, DataflowGraph graph, ClusterSpec cluster) {
        Map<String, ModelSpec> models = new LinkedHashMap<>();
        for (String role : graph.roles()) {
            models.put(role, model(config, role));
        }
        Profiles profiles = profiles(config, models, cluster.gpu().name());
        // the engine keeps whole data-parallel replicas: no ZeRO-3 layouts, so the estimate is of what runs
        return new PlanningProblem(graph, models, cluster, workload(config), profiles.constants(), profiles.table(),
                false);
    }

    /**
     * Whether a run plans with profile tables: {@code auto} (default) profiles first when a model has
     * no table for the run's devices (then plans with it), {@code use} plans with the tables that
     * exist (the roofline where none does), {@code off} with none. The test JVMs set {@code use}
     * (profiling first would add half a minute to every test run).
     */
    public static final String PROFILE = "spark.rlhf.profile";

    /**
     * The profile tables found for the run's models on {@code device} ({@link ProfileStore}) and the
     * constants to plan with: ReaL's, with the measured runtime costs in place of its fixed ones when a
     * table was found. {@code sources} lists the tables used; roles without one keep the roofline.
     */
    public record Profiles(ProfileTable table, CostConstants constants, List<String> sources, List<String> missing) {
    }

    public static Profiles profiles(RunConfig config, Map<String, ModelSpec> models, String device) {
        ProfileTable table = ProfileTable.empty();
        CostConstants k = CostConstants.calibrated();
        List<String> sources = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        if (profileMode(config).equals("off")) {
            return new Profiles(table, k, sources, missing);
        }
        for (Map.Entry<String, ModelSpec> e : models.entrySet()) {
            Optional<ProfileStore.Found> found = ProfileStore.find(config.output(), e.getValue().name(), device,
                    RunProfiler.configJson(config, e.getKey()));
            if (found.isEmpty()) {
                missing.add(e.getKey());
                continue;
            }
            if (!sources.contains(found.get().source())) {
                sources.add(found.get().source());
                table.read(found.get().source(), found.get().tableLines());
                k = CostConstants.calibrated().withRuntimeCosts(found.get().costs());
            }
        }
        return new Profiles(table, k, sources, missing);
    }

    public static String profileMode(RunConfig config) {
        String mode = config.spark().conf().getOrDefault(PROFILE, System.getProperty(PROFILE, "auto"));
        if (!List.of("use", "auto", "off").contains(mode)) {
            throw new IllegalArgumentException(config.source() + ": spark.conf." + PROFILE + ": expected use, auto or off, got "
                    + mode);
        }
        return mode;
    }

    /**
     * The planner's graph of the run's algorithm, the one description of it that the planner plans
     * and the runtime runs; a reward function on the driver stands in for reward_inf when the
     * rewards come from a function, and a model given with {@code trainable: false} has no train
     * call (its other calls run it frozen).
     */
    public static DataflowGraph graph(RunConfig config) {
        boolean rewardModel = config.reward() == null || config.reward().fromModel();
        DataflowGraph g = Algorithms.of(config.algorithm().key(), optimizerSteps(config), rewardModel)
                .withoutTraining(RunConfigReader.frozenRoles(config.models())).withEpochs(epochs(config));
        return withDraftTraining(g, config.generation().speculative());
    }

    /**
     * {@code graph} with the s3d_train call of {@code speculative}'s train_steps steps, when the
     * actor decodes speculatively and its draft trains (train_steps > 0; with 0 the draft stays as
     * it was loaded or initialised).
     */
    public static DataflowGraph withDraftTraining(DataflowGraph graph, RunConfig.SpeculativeConfig speculative) {
        if (speculative == null || speculative.trainSteps() == 0) {
            return graph;
        }
        return Algorithms.withS3dTraining(graph, speculative.trainSteps());
    }

    /** The passes a train call makes over its mini-batches (PPO's and GRPO's epochs). */
    static int epochs(RunConfig config) {
        if (config.ppo() != null) {
            return config.ppo().epochs();
        }
        return config.grpo() != null ? config.grpo().epochs() : 1;
    }

    /** The mini-batches a train call splits the iteration's batch into ({@link #epochs} passes over them). */
    static int optimizerSteps(RunConfig config) {
        if (config.ppo() != null) {
            return config.ppo().miniBatches();
        }
        return config.grpo() != null ? config.grpo().miniBatches() : 1;
    }

    /** The model of a role from its config.json; critics and reward models score with a value head. */
    public static ModelSpec model(RunConfig config, String role) {
        RunConfig.ModelConfig m = config.models().get(role);
        if (m == null) {
            throw new IllegalArgumentException(config.source() + ": models." + role + ": missing (the "
                    + config.algorithm().key() + " plan has calls on it)");
        }
        Path json = new ModelSource(m.path(), 0).localPath().resolve("config.json");
        ModelSpec spec;
        try {
            spec = ModelSpec.fromHfConfig(json);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(config.source() + ": models." + role + ": " + e.getMessage(), e);
        }
        return role.equals("critic") || role.equals("reward") ? spec.withValueHead() : spec;
    }

    /**
     * One iteration's batch: prompts of data.max_prompt_tokens, answers of generation.max_new_tokens,
     * decoded speculatively at generation.speculative's acceptance (0.5 unless the config gives one).
     * A training run plans with its data's longest prompt and answer in place of the two bounds
     * ({@code RunDriver.pricedConfig}); {@code spark-rlhf plan}, before any data is read, with the bounds.
     */
    public static Workload workload(RunConfig config) {
        int prompt = config.data().maxPromptTokens();
        Algorithm a = config.algorithm();
        // preference pairs: a chosen and a rejected answer of up to max_new_tokens per pair
        int gen = a == Algorithm.SFT ? 0 : config.generation().maxNewTokens();
        int perRow = a.fromPreferences() ? 2 : config.grpo() != null ? config.grpo().groupSize() : 1;
        long sequences = (long) config.data().batchSize() * perRow;
        RunConfig.SpeculativeConfig sp = config.generation().speculative();
        Speculation speculation = sp == null || gen == 0 ? null
                : new Speculation(sp.skipFrom(), sp.skipTo(), sp.draftTokens(), sp.acceptance());
        return new Workload(prompt, gen, sequences * (prompt + gen), speculation);
    }

    /** The planner's cluster for the discovered devices (see the class comment). */
    public static ClusterSpec cluster(ClusterInventory inventory, String gpuPreset) {
        Map<String, Integer> perNode = new LinkedHashMap<>();
        List<String> order = new ArrayList<>();
        for (DeviceSlot d : inventory.devices()) {
            String node = inventory.gpus() ? d.host() : d.host() + "/" + d.executorId();
            if (!perNode.containsKey(node)) {
                order.add(node);
            }
            perNode.merge(node, 1, Integer::sum);
        }
        int per = perNode.get(order.get(0));
        for (String node : order) {
            if (perNode.get(node) != per) {
                throw new IllegalArgumentException("the planner needs the same number of devices on every "
                        + (inventory.gpus() ? "host" : "executor") + ": " + perNode);
            }
        }
        // devices of one node must be consecutive in the inventory for global index = node * per + local
        for (int i = 0; i < inventory.size(); i++) {
            DeviceSlot d = inventory.device(i);
            String node = inventory.gpus() ? d.host() : d.host() + "/" + d.executorId();
            if (!order.get(i / per).equals(node)) {
                throw new IllegalStateException("device " + i + " is not in node " + i / per + " of " + order);
            }
        }
        return spec(order.size(), per, inventory.gpus(), gpuPreset);
    }

    /** The cluster a config's Spark master will give, before Spark starts (for {@code spark-rlhf plan}). */
    public static ClusterSpec cluster(RunConfig config) {
        SparkConf conf = new SparkConf(false).set("spark.master", config.spark().master());
        for (Map.Entry<String, String> e : config.spark().conf().entrySet()) {
            conf.set(e.getKey(), e.getValue());
        }
        ClusterDiscovery.Expectation e = ClusterDiscovery.expect(conf);
        return spec(e.executors(), e.slotsPerExecutor(), e.gpus(), gpuPreset(config));
    }

    public static String gpuPreset(RunConfig config) {
        return config.spark().conf().getOrDefault("spark.rlhf.gpu", "h100");
    }

    private static ClusterSpec spec(int nodes, int perNode, boolean gpus, String gpuPreset) {
        if (Integer.bitCount(perNode) != 1) {
            throw new IllegalArgumentException("the planner needs a power-of-two number of devices per "
                    + (gpus ? "node" : "executor") + " (1, 2, 4, 8, ...), got " + perNode);
        }
        if (!gpus) {
            return ClusterSpec.preset("cpu", nodes, perNode);
        }
        if (gpuPreset.equals("cpu")) {
            throw new IllegalArgumentException("spark.rlhf.gpu: the executors have GPUs; give h100 or a100");
        }
        return ClusterSpec.preset(gpuPreset, nodes, perNode);
    }
}
