package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.checkpoint.RunState;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An algorithm, as the runtime needs it besides its graph (which is the planner's,
 * {@code Algorithms.of}): the executor function of each call, the driver hooks, the training data,
 * the figures of an iteration and the held-out evaluation. {@link RunDriver} does everything else
 * (set-up, resume, data order, tables, checkpoints, the final models, releasing the executors'
 * copies) the same way for every algorithm. A spec object lives for one run and may keep state
 * across iterations (PPO's KL coefficient), which the checkpoint carries ({@link #checkpointCoef}).
 */
public interface AlgorithmSpec {
    /** Consecutive rows of the batch that belong to one prompt (GRPO's samples of a prompt; 1 otherwise). */
    int group(RunConfig config);

    /** The executor function of every call of the run's graph, by call name. */
    Map<String, CallBinding> bindings(RunConfig config);

    /** The implementation of every hook of the run's graph, by hook name. */
    Map<String, Hook> hooks(RunConfig config);

    /** The optimizer of a role the graph trains. */
    default RunConfig.OptimizerConfig optimizer(RunConfig config, String role) {
        return config.optimizer();
    }

    /** The model role whose tokenizer and special tokens the run's data is tokenized with. */
    default String tokenizerRole() {
        return "actor";
    }

    /** The training data (read and tokenized on the driver), and its held-out part. */
    TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output);

    /** An iteration's figures (besides seconds and tokens per second), its progress-line text, and its rollouts. */
    record Report(List<MetricRow> figures, String line, List<RolloutRow> rollouts) {
    }

    /** What the iteration's keys and call results say. */
    Report report(RunContext run, Keys keys, TrainingData data);

    /** Whether the run writes a rollouts table (algorithms that generate do). */
    default boolean writesRollouts() {
        return true;
    }

    /** The held-out evaluation, if this run has one. */
    default Optional<Evaluation> evaluation(RunConfig config, TrainingData data) {
        return Optional.empty();
    }

    /** A held-out evaluation: its figures ({@code eval/...}) and their progress-line text. */
    interface Evaluation {
        record Result(Map<String, Double> figures, String line) {
        }

        Result evaluate(RunContext run, int iteration);
    }

    /** The coefficient a checkpoint keeps (PPO's adaptive KL coefficient; 0 when the algorithm has none). */
    default double checkpointCoef() {
        return 0.0;
    }

    /** The group weights a checkpoint keeps (a group-robust run's; empty otherwise). */
    default Map<String, Double> checkpointGroupWeights() {
        return Map.of();
    }

    /** Continues from a checkpoint's state (its coefficient, its group weights). */
    default void restore(Optional<RunState> state) {
    }
}
