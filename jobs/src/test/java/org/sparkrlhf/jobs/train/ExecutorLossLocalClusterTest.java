package org.sparkrlhf.jobs.train;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * In-job recovery on real executor JVMs ({@code local-cluster}: two executors of two slots, every
 * call data parallel on one slot of each, devices 0 and 2): a GRPO run of 5 iterations, checkpoints every 2, loses an executor
 * JVM (killed by its pid, SIGKILL) when iteration 3's generate call starts, and the replacement
 * executor's sibling when iteration 5's does. Each time the stage fails, the run finds its devices
 * again (the cluster manager starts a new executor), clears its models from the survivor, resumes
 * from its newest checkpoint and goes on, in the same job; it ends with the uninterrupted run's final
 * weights, bit for bit, and its rollouts, each iteration's once.
 */
class ExecutorLossLocalClusterTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 900, unit = TimeUnit.SECONDS)
    void aRunThatLosesAnExecutorTwiceFinishesAsAnUninterruptedRun() throws Exception {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null) {
            throw new IllegalStateException("SPARK_HOME must be set (jobs/pom.xml sets it for surefire)");
        }
        Files.createDirectories(Path.of(sparkHome, "jars"));
        String spark = """
                master: local-cluster[2,2,1024]
                conf: {spark.executor.extraClassPath: '%s', spark.extraListeners: %s,
                       spark.rlhf.comm.timeoutMs: "60000", spark.ui.enabled: "false",
                       spark.databricks.delta.snapshotPartitions: "1",
                       spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}
                """.formatted(System.getProperty("java.class.path"), ExecutorKiller.class.getName());
        String plan = "{mode: manual, calls: {actor_gen: {devices: [0, 2], dp: 2}, ref_inf: {devices: [0, 2], dp: 2}, "
                + "actor_train: {devices: [0, 2], dp: 2}}}";
        Path straight = dir.resolve("straight");
        Path recovered = dir.resolve("recovered");
        ExecutorKiller.AT.clear();
        PlacedPpoLocalClusterTest.train(ResumeTest.grpoConfig(dir, "loss", straight, 2, spark, plan));

        ExecutorKiller.AT.addAll(List.of("actor_gen iteration 3 ", "actor_gen iteration 5 "));
        ExecutorKiller.KILLED.clear();
        ExecutorKiller.DONE.clear();
        String progress = PlacedPpoLocalClusterTest.train(ResumeTest.grpoConfig(dir, "loss", recovered, 2, spark, plan));
        assertEquals(2, ExecutorKiller.KILLED.size(), "executors killed: " + ExecutorKiller.KILLED + " of "
                + ProcessHandle.current().descendants().map(p -> p.pid() + " " + p.info().command().orElse("?")).toList());
        assertTrue(progress.contains("recovery: restart 1/2") && progress.contains("recovery: restart 2/2"), progress);

        SparkSession session = TestSpark.deltaSession("ExecutorLossLocalClusterTest", 1);
        try {
            Map<String, List<String>> expected = ResumeTest.rollouts(session, straight);
            assertEquals(expected, ResumeTest.rollouts(session, recovered),
                    "every iteration's rows once, as the uninterrupted run wrote them");
            List<Row> restarts = session.read().format("delta").load(RunOutput.metricsPath(recovered))
                    .filter("name = 'recovery/restart'").collectAsList();
            assertEquals(2, restarts.size(), restarts.toString());
        } finally {
            session.stop();
        }
        ResumeTest.assertFinalWeightsEqual(straight, recovered);
    }

    /**
     * Kills one executor JVM (a child process of this driver JVM, as local-cluster starts them) when a
     * job whose description starts with one of {@link #AT} starts, once per description.
     */
    public static final class ExecutorKiller extends SparkListener {
        /** An executor JVM, by its command line (read from /proc: ProcessHandle's may be cut short or absent). */
        static boolean isExecutor(ProcessHandle p) {
            try {
                byte[] cmd = java.nio.file.Files.readAllBytes(Path.of("/proc", Long.toString(p.pid()), "cmdline"));
                return new String(cmd, java.nio.charset.StandardCharsets.ISO_8859_1).contains("CoarseGrainedExecutorBackend");
            } catch (java.io.IOException e) {
                return false;
            }
        }

        static final Set<String> AT = Collections.synchronizedSet(new HashSet<>());
        static final List<Long> KILLED = Collections.synchronizedList(new java.util.ArrayList<>());
        private static final Set<String> DONE = Collections.synchronizedSet(new HashSet<>());

        @Override
        public void onJobStart(SparkListenerJobStart start) {
            String description = start.properties() == null ? null : start.properties().getProperty("spark.job.description");
            if (description == null) {
                return;
            }
            for (String at : Set.copyOf(AT)) {
                if (description.startsWith(at) && DONE.add(at)) {
                    ProcessHandle.current().descendants()
                            .filter(ExecutorKiller::isExecutor)
                            .findFirst()
                            .ifPresent(p -> {
                                KILLED.add(p.pid());
                                p.destroyForcibly();
                            });
                }
            }
        }
    }
}
