package org.sparkrlhf.jobs.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.sparkrlhf.jobs.config.RunConfig.CallLayout;
import org.sparkrlhf.jobs.config.RunConfig.CheckpointConfig;
import org.sparkrlhf.jobs.config.RunConfig.RecoveryConfig;
import org.sparkrlhf.jobs.config.RunConfig.DataConfig;
import org.sparkrlhf.jobs.config.RunConfig.GenerationConfig;
import org.sparkrlhf.jobs.config.RunConfig.GrpoConfig;
import org.sparkrlhf.jobs.config.RunConfig.KlConfig;
import org.sparkrlhf.jobs.config.RunConfig.ModelConfig;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.config.RunConfig.PlanConfig;
import org.sparkrlhf.jobs.config.RunConfig.PpoConfig;
import org.sparkrlhf.jobs.config.RunConfig.PreferenceConfig;
import org.sparkrlhf.jobs.config.RunConfig.RewardConfig;
import org.sparkrlhf.jobs.config.RunConfig.SparkConfig;
import org.sparkrlhf.jobs.executor.EngineOptions;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.ModelCall;

/**
 * Reads a run config (YAML) from any Hadoop FileSystem path ({@code file:}, {@code s3a://},
 * {@code dbfs:/}, or a plain local path) and validates all of it before any work starts: unknown
 * keys, missing models, values out of range, and hand-written layouts that cannot work on the
 * models' shapes. Every error names the file, the line and the key path.
 */
public final class RunConfigReader {
    static final Set<String> ROLES = Set.of("actor", "ref", "critic", "reward");
    static final Set<String> REWARD_FUNCTIONS = Set.of("arithmetic");
    static final Set<String> TASKS = Set.of("arithmetic");
    static final Set<String> FORMATS = Set.of("jsonl", "parquet", "delta");
    static final Set<String> PLAN_MODES = Set.of("search", "baseline", "file", "manual");

    private final Configuration hadoop;

    public RunConfigReader(Configuration hadoop) {
        this.hadoop = hadoop;
    }

    /** Reads and validates the config at {@code location}. */
    public RunConfig read(String location) {
        Path path = new Path(location);
        ConfigNode root;
        try {
            FileSystem fs = path.getFileSystem(hadoop);
            if (!fs.exists(path)) {
                throw new ConfigException(location + ": run config not found");
            }
            try (InputStream in = fs.open(path)) {
                root = ConfigNode.parse(location, in);
            }
        } catch (IOException e) {
            throw new ConfigException(location + ": cannot read the run config: " + e.getMessage(), e);
        }
        return validate(location, root);
    }

    /** Validates an already parsed config; {@code location} is used as the config's source. */
    public RunConfig validate(String location, ConfigNode root) {
        root.allowOnly("name", "algorithm", "seed", "iterations", "output", "models", "reward", "data",
                "generation", "optimizer", "ppo", "grpo", "rloo", "remax", "dpo", "ipo", "gr-dpo", "gr-ipo", "checkpoint", "recovery",
                "plan", "spark");
        ConfigNode algorithmNode = root.require("algorithm");
        Algorithm algorithm = parseAlgorithm(algorithmNode);
        for (Algorithm other : Algorithm.values()) {
            if (other != algorithm && root.has(other.key())) {
                throw root.get(other.key()).error("section is for " + other.key() + " but the algorithm is " + algorithm.key());
            }
        }
        String name = root.string("name", "run");
        long seed = root.longValue("seed", 1);
        int iterations = positive(root, "iterations", root.integer("iterations", 1));
        String output = root.require("output").asString();

        Map<String, ModelConfig> models = readModels(root.require("models"), algorithm);
        RewardConfig reward = readReward(root, algorithm, models);
        DataConfig data = readData(root.require("data"), algorithm);
        GenerationConfig generation = readGeneration(root.section("generation"));
        if (generation.speculative() != null && models.containsKey("actor")) {
            ConfigNode at = root.section("generation").require("speculative");
            int layers = shapeOf(models.get("actor"), at).layers();
            if (generation.speculative().skipTo() > layers) {
                throw at.require("skip_to").error("skips layers up to " + generation.speculative().skipTo()
                        + " of an actor with " + layers + " layers (" + models.get("actor").path() + ")");
            }
        }
        OptimizerConfig optimizer = readOptimizer(root.section("optimizer"));
        PpoConfig ppo = algorithm == Algorithm.PPO ? readPpo(root.section("ppo"), optimizer.lr(), data) : null;
        GrpoConfig grpo = algorithm.isSampledPolicyGradient()
                ? readGrpo(root.section(algorithm.key()), algorithm != Algorithm.REMAX) : null;
        PreferenceConfig preference = algorithm.isPreferenceOptimisation()
                ? readPreference(root.section(algorithm.key()), algorithm.isGroupRobust()) : null;
        CheckpointConfig checkpoint = readCheckpoint(root.section("checkpoint"));
        RecoveryConfig recovery = readRecovery(root.section("recovery"));
        PlanConfig plan = readPlan(root.section("plan"), algorithm, models, reward, generation.speculative());
        SparkConfig spark = readSpark(root.section("spark"));
        return new RunConfig(location, name, algorithm, seed, iterations, output, models, reward, data,
                generation, optimizer, ppo, grpo, preference, checkpoint, recovery, plan, spark);
    }

    private static Algorithm parseAlgorithm(ConfigNode node) {
        Algorithm a = Algorithm.byKey(node.asString().toLowerCase(Locale.ROOT));
        if (a == null) {
            throw node.error("unknown algorithm '" + node.asString() + "' (one of: "
                    + String.join(", ", java.util.Arrays.stream(Algorithm.values()).map(Algorithm::key).toList()) + ")");
        }
        return a;
    }

    private Map<String, ModelConfig> readModels(ConfigNode node, Algorithm algorithm) {
        Map<String, ModelConfig> models = new LinkedHashMap<>();
        for (String role : node.keys()) {
            ConfigNode m = node.get(role);
            if (!ROLES.contains(role)) {
                throw (m == null ? node : m).error("unknown model role '" + role + "' (roles: actor, ref, critic, reward)");
            }
            boolean used = algorithm.requiredModels().contains(role) || (role.equals("reward") && algorithm.needsReward());
            if (!used) {
                throw (m == null ? node : m).error("model role '" + role + "' is not used by " + algorithm.key());
            }
            if (m == null) {
                throw node.error(role + ": give the model's path (models." + role + ".path)");
            }
            m.allowOnly("path", "trainable");
            boolean trainableRole = role.equals("actor") || role.equals("critic")
                    || (role.equals("reward") && algorithm == Algorithm.RW);
            boolean trainable = m.bool("trainable", trainableRole);
            if (trainable && !trainableRole) {
                throw m.require("trainable").error("the " + role + " model is never trained; remove 'trainable: true'");
            }
            if (!trainable && role.equals(algorithm.trainedRole())) {
                throw m.require("trainable").error(algorithm.key() + " trains the " + role + " model (that is what it is "
                        + "for); remove 'trainable: false'");
            }
            ConfigNode pathNode = m.require("path");
            String modelPath = pathNode.asString();
            requireCheckpoint(pathNode, modelPath);
            if (role.equals("critic") && !trainable && !checkpointJson(modelPath, pathNode).path("architectures").path(0)
                    .asText("").endsWith("ForSequenceClassification")) {
                throw m.require("trainable").error("a critic that is not trained must be a value model (an HF "
                        + "...ForSequenceClassification checkpoint); " + modelPath + " is not, and would get a fresh, "
                        + "random value head");
            }
            if (role.equals("reward") && algorithm != Algorithm.RW && !checkpointJson(modelPath, pathNode).path("architectures").path(0).asText("")
                    .endsWith("ForSequenceClassification")) {
                throw pathNode.error(modelPath + " is not a reward model: a reward model is an HF "
                        + "...ForSequenceClassification checkpoint with one label (its config.json's architectures)");
            }
            models.put(role, new ModelConfig(role, modelPath, trainable));
        }
        for (String role : algorithm.requiredModels()) {
            if (!models.containsKey(role)) {
                String hint = role.equals("critic") ? "; a reward model, or the actor's checkpoint, which gets a fresh "
                        + "value head" : "";
                throw new ConfigException(node.file() + ":" + node.line() + ": models." + role
                        + ": required by " + algorithm.key() + " but missing (give models." + role + ".path" + hint + ")");
            }
        }
        ModelConfig actor = models.get("actor");
        if (actor != null) {
            int vocab = checkpointJson(actor.path(), node.get("actor")).path("vocab_size").asInt(-1);
            for (ModelConfig other : models.values()) {
                int otherVocab = checkpointJson(other.path(), node.get(other.role())).path("vocab_size").asInt(-1);
                if (other != actor && otherVocab != vocab) {
                    throw node.get(other.role()).require("path").error("vocab_size " + otherVocab + " differs from the "
                            + "actor's " + vocab + " (" + actor.path() + "): the " + other.role()
                            + " model reads the actor's tokens");
                }
            }
        }
        return models;
    }

    /** A model folder's config.json (its existence was checked). */
    private JsonNode checkpointJson(String modelPath, ConfigNode at) {
        Path json = new Path(modelPath, "config.json");
        try (InputStream in = json.getFileSystem(hadoop).open(json)) {
            return new ObjectMapper().readTree(in);
        } catch (IOException e) {
            throw at.error("cannot read " + json + ": " + e.getMessage());
        }
    }

    private static RewardConfig readReward(ConfigNode root, Algorithm algorithm, Map<String, ModelConfig> models) {
        ConfigNode node = root.section("reward");
        node.allowOnly("function", "clip");
        if (!algorithm.needsReward()) {
            if (root.has("reward")) {
                throw root.get("reward").error(algorithm.key() + " uses no reward; remove this section");
            }
            return null;
        }
        String function = node.string("function", null);
        boolean model = models.containsKey("reward");
        if (function == null && !model) {
            throw new ConfigException(root.file() + ":" + root.line() + ": models.reward: " + algorithm.key()
                    + " needs a reward: give models.reward.path (a reward model) or reward.function (one of: "
                    + String.join(", ", REWARD_FUNCTIONS) + ")");
        }
        if (function != null && model) {
            throw node.require("function").error("give either reward.function or models.reward, not both");
        }
        if (function != null && !REWARD_FUNCTIONS.contains(function)) {
            throw node.require("function").error("unknown reward function '" + function + "' (one of: "
                    + String.join(", ", REWARD_FUNCTIONS) + ")");
        }
        double clip = node.number("clip", 10.0);
        if (!(clip > 0)) {
            throw node.require("clip").error("must be > 0");
        }
        return new RewardConfig(function, clip);
    }

    private static DataConfig readData(ConfigNode node, Algorithm algorithm) {
        node.allowOnly("path", "format", "task", "batch_size", "eval_size", "eval_every", "eval_samples",
                "max_prompt_tokens", "eval_path");
        String path = node.string("path", null);
        String task = node.string("task", null);
        if ((path == null) == (task == null)) {
            throw node.error("give exactly one of data.path (a dataset) or data.task (a generated task: "
                    + String.join(", ", TASKS) + ")");
        }
        if (task != null && !TASKS.contains(task)) {
            throw node.require("task").error("unknown task '" + task + "' (one of: " + String.join(", ", TASKS) + ")");
        }
        String format = node.string("format", path == null ? null : formatOf(path));
        if (path != null && format == null) {
            throw node.require("path").error("cannot tell the format from the name; give data.format (jsonl, parquet or delta)");
        }
        if (format != null && !FORMATS.contains(format)) {
            throw node.require("format").error("unknown format '" + format + "' (one of: jsonl, parquet, delta)");
        }
        int batch = positive(node, "batch_size", node.integer("batch_size", 8));
        int evalSize = nonNegative(node, "eval_size", node.integer("eval_size", 0));
        int evalEvery = positive(node, "eval_every", node.integer("eval_every", 1));
        int evalSamples = positive(node, "eval_samples", node.integer("eval_samples", 1));
        int maxPrompt = positive(node, "max_prompt_tokens", node.integer("max_prompt_tokens", 128));
        String evalPath = node.string("eval_path", null);
        if (evalPath != null && !algorithm.fromPreferences()) {
            throw node.require("eval_path").error("a held-out dataset is read for preference pairs only; "
                    + algorithm.key() + " holds out data.eval_size prompts of its dataset");
        }
        if (evalPath != null && evalSize > 0) {
            throw node.require("eval_size").error("give either data.eval_path or data.eval_size, not both");
        }
        if (algorithm.fromPreferences() && task != null) {
            throw node.require("task").error(algorithm.key() + " trains on preference pairs: give data.path (prompt, "
                    + "chosen, rejected and an optional group per row)");
        }
        return new DataConfig(path, format, task, batch, evalSize, evalEvery, evalSamples, maxPrompt, evalPath);
    }

    private static String formatOf(String path) {
        String p = path.endsWith("/") ? path.substring(0, path.length() - 1) : path;
        if (p.endsWith(".jsonl") || p.endsWith(".json")) {
            return "jsonl";
        }
        if (p.endsWith(".parquet")) {
            return "parquet";
        }
        return null;
    }

    private static GenerationConfig readGeneration(ConfigNode node) {
        node.allowOnly("max_new_tokens", "temperature", "top_p", "top_k", "speculative");
        int maxNew = positive(node, "max_new_tokens", node.integer("max_new_tokens", 32));
        double temperature = node.number("temperature", 1.0);
        if (temperature < 0) {
            throw node.require("temperature").error("must be >= 0 (0 is greedy)");
        }
        double topP = node.number("top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) {
            throw node.require("top_p").error("must be in (0, 1]");
        }
        int topK = nonNegative(node, "top_k", node.integer("top_k", 0));
        return new GenerationConfig(maxNew, temperature, topP, topK, readSpeculative(node.get("speculative")));
    }

    /** generation.speculative, or null when absent; the skip range is checked against the actor's layers later. */
    private static RunConfig.SpeculativeConfig readSpeculative(ConfigNode node) {
        if (node == null) {
            return null;
        }
        if (!node.isMap()) {
            throw node.error("expected a mapping {method: s3d, skip_from, skip_to, draft_tokens}");
        }
        node.allowOnly("method", "skip_from", "skip_to", "draft_tokens", "train_steps", "train_lr", "acceptance");
        String method = node.require("method").asString();
        if (!method.equals("s3d")) {
            throw node.require("method").error("unknown speculative decoding method '" + method + "' (known: s3d)");
        }
        int from = nonNegative(node, "skip_from", node.require("skip_from").asInt());
        int to = node.require("skip_to").asInt();
        if (to < from) {
            throw node.require("skip_to").error("must be >= skip_from (" + from + ")");
        }
        int k = positive(node, "draft_tokens", node.require("draft_tokens").asInt());
        int steps = nonNegative(node, "train_steps", node.integer("train_steps", 4));
        double lr = node.number("train_lr", 0.01);
        if (!(lr > 0)) {
            throw node.require("train_lr").error("must be > 0");
        }
        double acceptance = node.number("acceptance", org.sparkrlhf.planner.spec.Speculation.DEFAULT_ACCEPTANCE);
        if (!(acceptance >= 0 && acceptance <= 1)) {
            throw node.require("acceptance").error("must be in [0, 1]");
        }
        return new RunConfig.SpeculativeConfig(method, from, to, k, steps, lr, acceptance);
    }

    private static OptimizerConfig readOptimizer(ConfigNode node) {
        node.allowOnly("lr", "betas", "eps", "weight_decay", "grad_clip", "warmup_steps");
        double lr = node.number("lr", 1e-5);
        if (!(lr > 0)) {
            throw node.require("lr").error("must be > 0");
        }
        double beta1 = 0.9;
        double beta2 = 0.95;
        ConfigNode betas = node.get("betas");
        if (betas != null) {
            List<ConfigNode> b = betas.items();
            if (b.size() != 2) {
                throw betas.error("expected two numbers [beta1, beta2]");
            }
            beta1 = b.get(0).asDouble();
            beta2 = b.get(1).asDouble();
            if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
                throw betas.error("each beta must be in [0, 1)");
            }
        }
        double eps = node.number("eps", 1e-8);
        if (!(eps > 0)) {
            throw node.require("eps").error("must be > 0");
        }
        double wd = node.number("weight_decay", 0.0);
        if (wd < 0) {
            throw node.require("weight_decay").error("must be >= 0");
        }
        double clip = node.number("grad_clip", 1.0);
        if (clip < 0) {
            throw node.require("grad_clip").error("must be >= 0 (0 disables clipping)");
        }
        int warmup = nonNegative(node, "warmup_steps", node.integer("warmup_steps", 0));
        return new OptimizerConfig(lr, beta1, beta2, eps, wd, clip, warmup);
    }

    private static PpoConfig readPpo(ConfigNode node, double lr, DataConfig data) {
        node.allowOnly("gamma", "lambda", "clip_ratio", "value_clip", "value_coef", "whiten_advantages",
                "epochs", "mini_batches", "kl", "critic_lr");
        double gamma = unit(node, "gamma", node.number("gamma", 1.0));
        double lambda = unit(node, "lambda", node.number("lambda", 0.95));
        double clipRatio = positiveNumber(node, "clip_ratio", node.number("clip_ratio", 0.2));
        double valueClip = positiveNumber(node, "value_clip", node.number("value_clip", 0.2));
        double valueCoef = positiveNumber(node, "value_coef", node.number("value_coef", 0.5));
        boolean whiten = node.bool("whiten_advantages", true);
        int epochs = positive(node, "epochs", node.integer("epochs", 1));
        int miniBatches = positive(node, "mini_batches", node.integer("mini_batches", 1));
        if (miniBatches > data.batchSize()) {
            throw node.require("mini_batches").error(miniBatches + " mini-batches of a batch of data.batch_size = "
                    + data.batchSize() + " responses leave some empty");
        }
        KlConfig kl = readKl(node.section("kl"), 0.05, "k1");
        double criticLr = positiveNumber(node, "critic_lr", node.number("critic_lr", lr));
        return new PpoConfig(gamma, lambda, clipRatio, valueClip, valueCoef, whiten, epochs, miniBatches, kl, criticLr);
    }

    private static KlConfig readKl(ConfigNode node, double defaultCoef, String defaultEstimator) {
        node.allowOnly("type", "coef", "target", "horizon", "estimator");
        String type = node.string("type", "fixed");
        if (!type.equals("fixed") && !type.equals("adaptive")) {
            throw node.require("type").error("unknown KL controller '" + type + "' (fixed or adaptive)");
        }
        double coef = node.number("coef", defaultCoef);
        if (coef < 0) {
            throw node.require("coef").error("must be >= 0");
        }
        boolean adaptive = type.equals("adaptive");
        double target = node.number("target", 6.0);
        int horizon = node.integer("horizon", 10000);
        if (adaptive && !(target > 0)) {
            throw node.require("target").error("an adaptive KL controller needs a target > 0");
        }
        if (adaptive && horizon <= 0) {
            throw node.require("horizon").error("must be > 0");
        }
        if (!adaptive && (node.has("target") || node.has("horizon"))) {
            throw (node.has("target") ? node.get("target") : node.get("horizon"))
                    .error("only an adaptive KL controller has a target and horizon (set kl.type: adaptive)");
        }
        String estimator = node.string("estimator", defaultEstimator);
        if (!estimator.equals("k1") && !estimator.equals("k3")) {
            throw node.require("estimator").error("unknown KL estimator '" + estimator + "' (k1 or k3)");
        }
        return new KlConfig(adaptive, coef, target, horizon, estimator);
    }

    private static GrpoConfig readGrpo(ConfigNode node, boolean grouped) {
        if (grouped) {
            node.allowOnly("group_size", "clip_ratio", "kl_coef", "epochs", "mini_batches");
        } else {
            // ReMax's baseline is the greedy answer: one sample per prompt
            node.allowOnly("clip_ratio", "kl_coef", "epochs", "mini_batches");
        }
        int group = grouped ? node.integer("group_size", 4) : 1;
        if (grouped && group < 2) {
            throw node.require("group_size").error("must be >= 2 (each sample's baseline comes from the others of its group)");
        }
        double clipRatio = positiveNumber(node, "clip_ratio", node.number("clip_ratio", 0.2));
        double klCoef = node.number("kl_coef", 0.04);
        if (klCoef < 0) {
            throw node.require("kl_coef").error("must be >= 0");
        }
        int epochs = positive(node, "epochs", node.integer("epochs", 1));
        int miniBatches = positive(node, "mini_batches", node.integer("mini_batches", 1));
        return new GrpoConfig(group, clipRatio, klCoef, epochs, miniBatches);
    }

    private static PreferenceConfig readPreference(ConfigNode node, boolean groupRobust) {
        if (groupRobust) {
            node.allowOnly("beta", "group_step_size", "group_scaling", "chi");
        } else {
            node.allowOnly("beta");
        }
        double beta = positiveNumber(node, "beta", node.number("beta", 0.1));
        double step = groupRobust ? positiveNumber(node, "group_step_size", node.number("group_step_size", 0.01)) : 0;
        String scaling = groupRobust ? node.string("group_scaling", "dataset") : "dataset";
        if (!scaling.equals("dataset") && !scaling.equals("batch")) {
            throw node.require("group_scaling").error("must be dataset or batch");
        }
        double chi = groupRobust ? node.number("chi", 1.0) : 1.0;
        if (chi < 0 || chi > 1) {
            throw node.require("chi").error("must be in [0, 1]");
        }
        return new PreferenceConfig(beta, step, scaling, chi);
    }

    private static CheckpointConfig readCheckpoint(ConfigNode node) {
        node.allowOnly("every", "keep");
        int every = nonNegative(node, "every", node.integer("every", 0));
        int keep = positive(node, "keep", node.integer("keep", 2));
        return new CheckpointConfig(every, keep);
    }

    private static RecoveryConfig readRecovery(ConfigNode node) {
        node.allowOnly("max_restarts");
        return new RecoveryConfig(nonNegative(node, "max_restarts", node.integer("max_restarts", 2)));
    }

    private PlanConfig readPlan(ConfigNode node, Algorithm algorithm, Map<String, ModelConfig> models,
                                RewardConfig reward, RunConfig.SpeculativeConfig speculative) {
        node.allowOnly("mode", "file", "search_seconds", "calls");
        String mode = node.string("mode", "search");
        if (!PLAN_MODES.contains(mode)) {
            throw node.require("mode").error("unknown plan mode '" + mode + "' (one of: search, baseline, file, manual)");
        }
        String file = node.string("file", null);
        if (mode.equals("file") && file == null) {
            throw node.error("plan.mode is file: give plan.file (a plan JSON)");
        }
        if (!mode.equals("file") && file != null) {
            throw node.require("file").error("a plan file is only read with plan.mode: file");
        }
        double searchSeconds = node.number("search_seconds", 10.0);
        if (!(searchSeconds > 0)) {
            throw node.require("search_seconds").error("must be > 0");
        }
        Map<String, CallLayout> calls = new LinkedHashMap<>();
        ConfigNode callsNode = node.get("calls");
        if (!mode.equals("manual")) {
            if (callsNode != null) {
                throw callsNode.error("layouts by hand are only read with plan.mode: manual");
            }
            return new PlanConfig(mode, file, searchSeconds, Map.of());
        }
        if (callsNode == null) {
            throw node.error("plan.mode is manual: give plan.calls with a layout for each call ("
                    + String.join(", ", callsOf(algorithm, reward, models, speculative)) + ")");
        }
        List<String> expected = callsOf(algorithm, reward, models, speculative);
        for (String call : callsNode.keys()) {
            ConfigNode c = callsNode.section(call);
            if (!expected.contains(call)) {
                throw c.error("no call '" + call + "' in " + algorithm.key() + " (calls: " + String.join(", ", expected) + ")");
            }
            calls.put(call, readLayout(call, c, models.get(Algorithm.roleOf(call))));
        }
        for (String call : expected) {
            if (!calls.containsKey(call)) {
                throw callsNode.error("plan.calls." + call + ": missing (every call needs a layout in manual mode)");
            }
        }
        return new PlanConfig(mode, null, searchSeconds, calls);
    }

    /** The calls of an algorithm given where its rewards come from: a reward function needs no reward_inf call. */
    public static List<String> callsOf(Algorithm algorithm, RewardConfig reward) {
        return callsOf(algorithm, reward, Map.of());
    }

    /** {@link #callsOf(Algorithm, RewardConfig)} without the train calls of models given {@code trainable: false}. */
    public static List<String> callsOf(Algorithm algorithm, RewardConfig reward, Map<String, ModelConfig> models) {
        return callsOf(algorithm, reward, models, null);
    }

    /** {@link #callsOf(Algorithm, RewardConfig, Map)} with s3d_train when {@code speculative} trains the draft. */
    public static List<String> callsOf(Algorithm algorithm, RewardConfig reward, Map<String, ModelConfig> models,
                                       RunConfig.SpeculativeConfig speculative) {
        boolean rewardModel = reward == null || reward.fromModel();
        return org.sparkrlhf.jobs.plan.RunScenario.withDraftTraining(
                        Algorithms.of(algorithm.key(), 1, rewardModel).withoutTraining(frozenRoles(models)), speculative)
                .calls().stream().map(ModelCall::name).toList();
    }

    /** The roles a run does not train: {@code trainable: false}, given or by default (ref, reward outside RW). */
    public static Set<String> frozenRoles(Map<String, ModelConfig> models) {
        Set<String> out = new java.util.LinkedHashSet<>();
        for (ModelConfig m : models.values()) {
            if (!m.trainable()) {
                out.add(m.role());
            }
        }
        return out;
    }

    private CallLayout readLayout(String call, ConfigNode node, ModelConfig model) {
        if (node.has("zero3")) {
            throw node.get("zero3").error("ZeRO-3 sharding is not run by this runtime (it keeps "
                    + "whole data-parallel replicas); remove zero3 and give the call a dp x tp x pp layout");
        }
        node.allowOnly("devices", "dp", "tp", "pp", "micro_batches");
        List<Integer> devices = new ArrayList<>();
        Set<Integer> seen = new HashSet<>();
        for (ConfigNode d : node.require("devices").items()) {
            int index = d.asInt();
            if (index < 0) {
                throw d.error("device indices start at 0");
            }
            if (!seen.add(index)) {
                throw d.error("device " + index + " is listed twice");
            }
            devices.add(index);
        }
        if (devices.isEmpty()) {
            throw node.require("devices").error("a call needs at least one device");
        }
        int dp = positive(node, "dp", node.integer("dp", 1));
        int tp = positive(node, "tp", node.integer("tp", 1));
        int pp = positive(node, "pp", node.integer("pp", 1));
        int microBatches = positive(node, "micro_batches", node.integer("micro_batches", 1));
        if ((long) dp * tp * pp != devices.size()) {
            throw node.error("dp * tp * pp = " + dp + " * " + tp + " * " + pp + " = " + (dp * tp * pp)
                    + " but the call has " + devices.size() + " devices");
        }
        if (pp > 1 && microBatches < pp && call.endsWith("_train")) {
            throw node.require("micro_batches").error("pipeline training with pp = " + pp
                    + " needs at least " + pp + " micro-batches");
        }
        ModelShape shape = shapeOf(model, node);
        if (shape.heads % tp != 0 || shape.kvHeads % tp != 0) {
            throw node.require("tp").error("tp = " + tp + " does not divide the model's " + shape.heads
                    + " attention heads and " + shape.kvHeads + " key/value heads (" + model.path() + ")");
        }
        if (pp > shape.layers) {
            throw node.require("pp").error("pp = " + pp + " is more than the model's " + shape.layers + " layers");
        }
        return new CallLayout(call, List.copyOf(devices), dp, tp, pp, microBatches);
    }

    private record ModelShape(int heads, int kvHeads, int layers) {
    }

    /** The few shape numbers a layout depends on, from the model's HF config.json. */
    private ModelShape shapeOf(ModelConfig model, ConfigNode at) {
        Path config = new Path(model.path(), "config.json");
        try {
            FileSystem fs = config.getFileSystem(hadoop);
            if (!fs.exists(config)) {
                throw at.error("cannot check the layout: " + config + " not found (models." + model.role() + ".path)");
            }
            JsonNode json;
            try (InputStream in = fs.open(config)) {
                json = new ObjectMapper().readTree(in);
            }
            int heads = json.path("num_attention_heads").asInt(0);
            int kvHeads = json.path("num_key_value_heads").asInt(heads);
            int layers = json.path("num_hidden_layers").asInt(0);
            if (heads <= 0 || layers <= 0) {
                throw at.error(config + ": num_attention_heads and num_hidden_layers must be positive");
            }
            return new ModelShape(heads, kvHeads, layers);
        } catch (IOException e) {
            throw at.error("cannot read " + config + ": " + e.getMessage());
        }
    }

    private static SparkConfig readSpark(ConfigNode node) {
        node.allowOnly("master", "conf");
        String master = node.string("master", "local[*]");
        Map<String, String> conf = new LinkedHashMap<>();
        ConfigNode confNode = node.get("conf");
        if (confNode != null) {
            for (String key : confNode.keys()) {
                conf.put(key, confNode.require(key).asString());
            }
            // the engine's settings (spark.rlhf.engine.precision: fp32|bf16, spark.rlhf.engine.localGpu:
            // a CUDA ordinal for embedded runs) travel in the Spark conf to the executors; checked here
            // to point at the line
            for (String key : List.of(EngineOptions.PRECISION, EngineOptions.LOCAL_GPU)) {
                if (conf.containsKey(key)) {
                    try {
                        EngineOptions.parse(key.equals(EngineOptions.PRECISION) ? conf.get(key) : null,
                                key.equals(EngineOptions.LOCAL_GPU) ? conf.get(key) : null);
                    } catch (IllegalArgumentException e) {
                        throw confNode.require(key).error(e.getMessage());
                    }
                }
            }
        }
        return new SparkConfig(master, conf);
    }

    /** A model folder must be an HF checkpoint: it holds config.json. */
    private void requireCheckpoint(ConfigNode at, String modelPath) {
        Path json = new Path(modelPath, "config.json");
        try {
            if (!json.getFileSystem(hadoop).exists(json)) {
                throw at.error(json + " not found (a model folder is an HF checkpoint with config.json)");
            }
        } catch (IOException e) {
            throw at.error("cannot read " + modelPath + ": " + e.getMessage());
        }
    }

    private static int positive(ConfigNode node, String key, int value) {
        if (value <= 0) {
            throw node.require(key).error("must be > 0");
        }
        return value;
    }

    private static int nonNegative(ConfigNode node, String key, int value) {
        if (value < 0) {
            throw node.require(key).error("must be >= 0");
        }
        return value;
    }

    private static double positiveNumber(ConfigNode node, String key, double value) {
        if (!(value > 0)) {
            throw node.require(key).error("must be > 0");
        }
        return value;
    }

    private static double unit(ConfigNode node, String key, double value) {
        if (!(value >= 0 && value <= 1)) {
            throw node.require(key).error("must be in [0, 1]");
        }
        return value;
    }
}
