package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.testing.TestSpark;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.ModelStore;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * In-job recovery, embedded: the executors lose every copy of the actor (as a replaced executor
 * would hold none) twice in one GRPO run of 5 iterations with checkpoints every 2: after iteration
 * 3's tables (iteration 4 then fails: the actor's version is in no executor and not in checkpoint 2)
 * and after iteration 5's (the final save fails). The run restarts by itself from checkpoint 2, then
 * from checkpoint 4, and ends with the uninterrupted run's final weights and rollouts, each
 * iteration's once; the metrics table holds one row per restart. With no restarts left the same
 * fault fails the run. The local-cluster test kills an executor JVM instead.
 */
class InJobRecoveryTest {
    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        spark = TestSpark.deltaSession("in-job recovery test", 2);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        ModelStore.get().clear();
    }

    @Test
    @Timeout(value = 900, unit = TimeUnit.SECONDS)
    void aRunThatLosesItsActorTwiceRestartsByItselfAndEndsAsAnUninterruptedRun() throws Exception {
        Path straight = dir.resolve("straight");
        Path recovered = dir.resolve("recovered");
        ModelStore.get().clear();
        TrainCommand.train(spark, ResumeTest.grpoConfig(dir, "recovery", straight, 2), System.out);
        ModelStore.get().clear();

        String log = train(ResumeTest.grpoConfig(dir, "recovery", recovered, 2), Set.of(3, 5));
        assertTrue(log.contains("recovery: restart 1/2 after iteration 4 failed"), log);
        assertTrue(log.contains("recovery: restart 2/2 after iteration 5 failed"), log);
        assertTrue(log.contains("iteration 2 done") && log.contains("iteration 4 done"), log);

        Map<String, List<String>> expected = ResumeTest.rollouts(spark, straight);
        Map<String, List<String>> actual = ResumeTest.rollouts(spark, recovered);
        assertEquals(expected, actual, "every iteration's rows once, as the uninterrupted run wrote them");
        ResumeTest.assertFinalWeightsEqual(straight, recovered);
        List<Row> restarts = spark.read().format("delta").load(RunOutput.metricsPath(recovered))
                .filter("name = 'recovery/restart'").orderBy("value").collectAsList();
        assertEquals(2, restarts.size());
        assertEquals(4L, restarts.get(0).<Long>getAs("iteration"));
        assertEquals(1.0, restarts.get(0).<Double>getAs("value"));
        assertEquals(5L, restarts.get(1).<Long>getAs("iteration"));
        assertEquals(2.0, restarts.get(1).<Double>getAs("value"));

        // no restarts left: the same fault ends the run with its cause
        ModelStore.get().clear();
        RunConfig strict = ResumeTest.grpoConfig(dir, "recovery", dir.resolve("strict"), 0);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> train(strict, Set.of(3)));
        assertTrue(e.getMessage().contains("is not in this executor"), e.getMessage());
        ModelStore.get().clear();
    }

    /** Runs {@code config}, losing the actor's copies right after the first progress line of each of {@code lossAfter}. */
    private static String train(RunConfig config, Set<Integer> lossAfter) {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        Set<Integer> done = new HashSet<>();
        PrintStream progress = ResumeTest.progress(sink, text -> {
            for (int i : lossAfter) {
                if (text.startsWith("iter " + i + "/") && done.add(i)) {
                    ResumeTest.loseActor().run();
                }
            }
        });
        try {
            TrainCommand.train(spark, config, progress);
        } finally {
            System.out.print(sink.toString(StandardCharsets.UTF_8));
        }
        return sink.toString(StandardCharsets.UTF_8);
    }
}
