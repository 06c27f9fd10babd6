package org.sparkrlhf.jobs.config;

import java.util.List;
import java.util.Map;

/**
 * A validated run config: everything a training run needs to know before it starts. Built only by
 * {@link RunConfigReader}, which checks every field; the records below hold plain values.
 *
 * @param source     where the config was read from (a Hadoop FileSystem path)
 * @param output     the run's folder (Hadoop path): Delta tables and checkpoints go under it
 */
public record RunConfig(
        String source,
        String name,
        Algorithm algorithm,
        long seed,
        int iterations,
        String output,
        Map<String, ModelConfig> models,
        RewardConfig reward,
        DataConfig data,
        GenerationConfig generation,
        OptimizerConfig optimizer,
        PpoConfig ppo,
        GrpoConfig grpo,
        PreferenceConfig preference,
        CheckpointConfig checkpoint,
        RecoveryConfig recovery,
        PlanConfig plan,
        SparkConfig spark) {

    /**
     * This config with the sequence lengths the planner prices: {@code promptTokens} for
     * data.max_prompt_tokens, and {@code answerTokens} for generation.max_new_tokens unless it is
     * below 1 (answers that are generated, or SFT, whose examples are priced whole as prompts). The
     * run itself keeps the configured bounds.
     */
    public RunConfig pricedAt(int promptTokens, int answerTokens) {
        DataConfig d = new DataConfig(data.path(), data.format(), data.task(), data.batchSize(), data.evalSize(),
                data.evalEvery(), data.evalSamples(), promptTokens, data.evalPath());
        GenerationConfig g = answerTokens < 1 ? generation : new GenerationConfig(answerTokens, generation.temperature(),
                generation.topP(), generation.topK(), generation.speculative());
        return new RunConfig(source, name, algorithm, seed, iterations, output, models, reward, d, g, optimizer, ppo, grpo,
                preference, checkpoint, recovery, plan, spark);
    }

    /** One model role: an HF checkpoint folder, and whether this run trains it. */
    public record ModelConfig(String role, String path, boolean trainable) {
    }

    /**
     * Where rewards come from: exactly one of a reward model ({@code models.reward}) or a verifiable
     * reward function of the datasets module (by name, e.g. {@code arithmetic}).
     */
    public record RewardConfig(String function, double clip) {
        public boolean fromModel() {
            return function == null;
        }
    }

    /**
     * The prompts: a dataset at {@code path} (JSONL, Parquet or Delta) or a synthetic task generated
     * from the run's seed; {@code evalSize} held-out prompts are scored every {@code evalEvery}
     * iterations (and before the first): greedily when {@code evalSamples} is 1, else as the mean
     * reward of {@code evalSamples} answers per prompt sampled at the generation settings (with the
     * same seeds at every evaluation, so that evaluations differ only by the policy).
     */
    /** {@code evalPath}: a held-out dataset of the training data's kind (preference pairs), or null. */
    public record DataConfig(String path, String format, String task, int batchSize, int evalSize,
                             int evalEvery, int evalSamples, int maxPromptTokens, String evalPath) {
    }

    /** {@code speculative}: actor_gen's self-speculative decoding, or null for plain decoding. */
    public record GenerationConfig(int maxNewTokens, double temperature, double topP, int topK,
                                   SpeculativeConfig speculative) {
        public GenerationConfig(int maxNewTokens, double temperature, double topP, int topK) {
            this(maxNewTokens, temperature, topP, topK, null);
        }
    }

    /**
     * S3D self-speculative decoding for actor_gen: the actor with layers [skipFrom, skipTo) skipped
     * drafts {@code draftTokens} tokens per step; after each actor_train the mask embeddings take
     * {@code trainSteps} S3D steps at {@code trainLr} on the iteration's sequences. {@code acceptance}
     * is the planner's expected per-token acceptance of a draft (the planner's Speculation.DEFAULT_ACCEPTANCE
     * when the config has none).
     */
    public record SpeculativeConfig(String method, int skipFrom, int skipTo, int draftTokens, int trainSteps,
                                    double trainLr, double acceptance) implements java.io.Serializable {
    }

    public record OptimizerConfig(double lr, double beta1, double beta2, double eps, double weightDecay,
                                  double gradClip, int warmupSteps) implements java.io.Serializable {
    }

    /** KL penalty against the reference model: fixed or adaptive (Ziegler et al.) coefficient. */
    public record KlConfig(boolean adaptive, double coef, double target, int horizon, String estimator) {
    }

    /**
     * PPO's settings; {@code criticLr} is the critic's learning rate (the optimizer section's lr
     * unless given), its other optimizer settings are the actor's.
     */
    public record PpoConfig(double gamma, double lambda, double clipRatio, double valueClip, double valueCoef,
                            boolean whitenAdvantages, int epochs, int miniBatches, KlConfig kl, double criticLr) {
    }

    /**
     * The settings of the sampled policy-gradient algorithms (GRPO, RLOO, ReMax), from the section
     * named after the algorithm: samples per prompt (1 for ReMax, whose baseline is a greedy answer),
     * the surrogate's clip, the k3 KL coefficient to the reference, epochs and mini-batches.
     */
    public record GrpoConfig(int groupSize, double clipRatio, double klCoef, int epochs, int miniBatches) {
    }

    /**
     * DPO, IPO and the group-robust variants, from the section named after the algorithm: beta, and
     * for GR-DPO / GR-IPO the step size of the group weights' exponentiated-gradient update, how group
     * losses are scaled ({@code dataset}: by N / N_g over the training set; {@code batch}: the mean
     * over the batch's pairs of the group), and chi (1: the worst-group objective; 0: the average).
     */
    public record PreferenceConfig(double beta, double groupStepSize, String groupScaling, double chi) {
    }

    /** Checkpoints every {@code every} iterations (0: only at the end), keeping the newest {@code keep}. */
    public record CheckpointConfig(int every, int keep) {
    }

    /**
     * In-job recovery: how many times a run restarts from its newest checkpoint after a failure a
     * retry can cure (a lost executor, a failed stage) before it gives up; 0 turns it off.
     */
    public record RecoveryConfig(int maxRestarts) {
    }

    /**
     * How the execution plan is chosen: {@code search} (the planner's search for
     * {@code searchSeconds}), {@code baseline} (one symmetric layout for every call), {@code file} (a
     * plan JSON written earlier) or {@code manual} (the layouts in {@code calls}).
     */
    public record PlanConfig(String mode, String file, double searchSeconds, Map<String, CallLayout> calls) {
    }

    /**
     * A call's layout given by hand: the cluster's device indices it runs on (in discovery order),
     * and dp * tp * pp = number of devices.
     */
    public record CallLayout(String call, List<Integer> devices, int dp, int tp, int pp, int microBatches) {
    }

    /** The Spark master for embedded runs (ignored under spark-submit, which sets its own) and extra conf. */
    public record SparkConfig(String master, Map<String, String> conf) {
    }
}
