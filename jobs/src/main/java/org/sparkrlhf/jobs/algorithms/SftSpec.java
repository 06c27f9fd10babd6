package org.sparkrlhf.jobs.algorithms;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.tables.MetricRow;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.CallBinding;
import org.sparkrlhf.jobs.graph.Hook;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.TrainBinding;
import org.sparkrlhf.jobs.train.AlgorithmSpec;
import org.sparkrlhf.jobs.train.SftData;
import org.sparkrlhf.jobs.train.SpecialTokens;
import org.sparkrlhf.jobs.train.TrainingData;

import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/** Supervised fine-tuning: one actor_train call per iteration with the SFT loss on the answers. */
public final class SftSpec implements AlgorithmSpec {
    @Override
    public int group(RunConfig config) {
        return 1;
    }

    @Override
    public Map<String, CallBinding> bindings(RunConfig config) {
        return Map.of("actor_train", new TrainBinding<>(TrainLosses.sft()));
    }

    @Override
    public Map<String, Hook> hooks(RunConfig config) {
        return Map.of();
    }

    @Override
    public TrainingData data(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special, String output) {
        return SftData.read(spark, config, tokenizerDir, special);
    }

    @Override
    public boolean writesRollouts() {
        return false;
    }

    @Override
    public Report report(RunContext run, Keys keys, TrainingData data) {
        @SuppressWarnings("unchecked")
        SftTrainCall.Result step = ((List<SftTrainCall.Result>) keys.result("actor_train", List.class)).get(0);
        Instant now = Instant.now();
        return new Report(List.of(new MetricRow("loss/actor", step.loss(), now),
                new MetricRow("grad_norm/actor", step.gradNorm(), now)),
                String.format("loss %.4f | grad norm %.3f", step.loss(), step.gradNorm()), List.of());
    }
}
