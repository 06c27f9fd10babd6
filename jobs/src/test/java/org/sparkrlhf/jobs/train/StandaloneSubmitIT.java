package org.sparkrlhf.jobs.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.tables.IterationTable;
import org.sparkrlhf.datasets.tables.RolloutRow;
import org.sparkrlhf.jobs.testing.SparkDistribution;
import org.sparkrlhf.jobs.testing.StandaloneCluster;
import org.sparkrlhf.jobs.testing.TestSpark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The spark-submit jar on a Spark standalone cluster (a Master and two Workers on the loopback
 * address, started from Spark's jars), submitted with {@code org.apache.spark.deploy.SparkSubmit} as
 * {@code bin/spark-submit} does, in client and in cluster deploy mode: the GRPO example, shrunk to two
 * iterations of four prompts on the tiny fixture model (against a {@link PerturbedReference}),
 * completes in both and samples the same tokens as the embedded run (Spark local[2], in this JVM)
 * with the same seed. The runs place the calls
 * differently (two local slots against two executors of two slots); sampling draws counter-based
 * random numbers per sequence, so the tokens do not depend on the layout, and the log-probabilities
 * differ only by the order of float sums ({@link PlacedGrpoLocalClusterTest#TOLERANCE}).
 *
 * <p>The driver and executors get Spark, Delta and their libraries from the cluster's
 * {@code SPARK_HOME/jars} and this project's classes, the tokenizers and OpenBLAS only from the
 * submitted jar (see jobs/pom.xml), which must carry no Spark, Delta or Scala classes. Each Worker
 * offers three CPU slots: two for its executor, one for the driver in cluster mode.
 *
 * <p>Runs in the integration-test phase, after the package phase built the jar: {@code mvn verify},
 * unless {@code -Dtest} picks unit tests or {@code -DskipITs} is given (the profile
 * {@code standalone-submit} of jobs/pom.xml; {@code -Pstandalone-submit -Dtest=NONE
 * -Dsurefire.failIfNoSpecifiedTests=false} runs it alone).
 */
@Tag("cluster")
class StandaloneSubmitIT {
    private static final int ITERATIONS = 2;
    private static final Path EXAMPLE = Path.of("../examples/grpo-arith-tiny.yaml").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @Test
    // a guard against a hung cluster: the test took 515 s and 727 s on a 2-core machine shared with other builds
    @Timeout(value = 1500, unit = TimeUnit.SECONDS)
    void submittedRunsSampleTheEmbeddedRunsTokens() throws Exception {
        Path jar = Path.of(System.getProperty("sparkrlhf.submitJar", "(sparkrlhf.submitJar is not set)"));
        assertBundlesNoSpark(jar);

        Path embedded = dir.resolve("embedded");
        assertEquals(0, TrainCommand.run(new String[]{config("embedded", embedded).toString()}), "the embedded run");

        SparkDistribution spark = SparkDistribution.create();
        Path client = dir.resolve("client");
        Path cluster = dir.resolve("cluster");
        try (StandaloneCluster standalone = StandaloneCluster.start(spark, dir.resolve("standalone"), 2, 3, "3g")) {
            for (JsonNode worker : standalone.state().path("workers")) {
                assertEquals("[\"0\",\"1\"]", worker.path("resources").path("gpu").path("addresses").toString(),
                        "each Worker offers the discovery script's GPUs: " + worker);
            }
            submit(spark, standalone, "client", jar, config("client", client));
            submit(spark, standalone, "cluster", jar, config("cluster", cluster));
            JsonNode drivers = standalone.state().path("completeddrivers");
            assertEquals(1, drivers.size(), drivers.toString());
            String driverId = drivers.get(0).path("id").asText();
            String driverStdout = standalone.driverOutput(driverId, "stdout");
            System.out.println("cluster-mode driver " + driverId + " printed:\n" + driverStdout);
            assertEquals("FINISHED", drivers.get(0).path("state").asText(),
                    standalone.driverOutput(driverId, "stderr") + driverStdout);
        }

        SparkSession session = TestSpark.deltaSession("StandaloneSubmitIT", 1);
        try {
            List<List<RolloutRow>> expected = rollouts(session, embedded);
            for (Path submitted : List.of(client, cluster)) {
                List<List<RolloutRow>> got = rollouts(session, submitted);
                System.out.printf("%s: tokens digest %s (embedded: %s)%n", submitted.getFileName(), digest(got), digest(expected));
                for (int i = 0; i < ITERATIONS; i++) {
                    assertEquals(expected.get(i).size(), got.get(i).size());
                    for (int s = 0; s < expected.get(i).size(); s++) {
                        RolloutRow e = expected.get(i).get(s);
                        RolloutRow g = got.get(i).get(s);
                        String where = submitted.getFileName() + " iteration " + (i + 1) + " sample " + s + " of " + e.promptId();
                        assertEquals(e.promptId(), g.promptId(), where);
                        assertArrayEquals(e.responseTokens(), g.responseTokens(), where);
                        assertArrayEquals(e.logprobs(), g.logprobs(), PlacedGrpoLocalClusterTest.TOLERANCE, where);
                        assertEquals(e.reward(), g.reward(), where);
                    }
                }
            }
        } finally {
            session.stop();
        }
    }

    /** Spark, Delta and Scala are the cluster's: a second copy in the jar would clash with them. */
    private static void assertBundlesNoSpark(Path jar) throws IOException {
        assertTrue(Files.isRegularFile(jar), jar + " is missing: the package phase builds it");
        try (JarFile file = new JarFile(jar.toFile())) {
            List<String> names = file.stream().map(e -> e.getName()).toList();
            for (String provided : List.of("org/apache/spark/", "io/delta/", "scala/")) {
                assertFalse(names.stream().anyMatch(n -> n.startsWith(provided)), jar + " bundles " + provided);
            }
            for (String bundled : List.of("org/sparkrlhf/jobs/Main.class", "ai/djl/huggingface/tokenizers/",
                    "org/bytedeco/openblas/")) {
                assertTrue(names.stream().anyMatch(n -> n.startsWith(bundled)), jar + " lacks " + bundled);
            }
        }
    }

    /**
     * The GRPO example with two iterations of four prompts, no held-out evaluation, the tiny fixture
     * model as actor (the example's SFT model exists only after the SFT example ran) and a
     * {@link PerturbedReference} (so the second iteration samples from an actor that real gradients
     * trained), one mini-batch, and its output under {@code output}. Spark's master here serves the embedded run;
     * spark-submit sets its own.
     */
    /** {@code parent}'s object under {@code name}, added when absent (Jackson 2.15, the 3.5 line's, has no withObjectProperty). */
    private static ObjectNode child(ObjectNode parent, String name) {
        return parent.get(name) instanceof ObjectNode o ? o : parent.putObject(name);
    }

    private Path config(String name, Path output) throws Exception {
        ObjectMapper yaml = new ObjectMapper(new YAMLFactory());
        ObjectNode root = (ObjectNode) yaml.readTree(EXAMPLE.toFile());
        root.put("iterations", ITERATIONS);
        root.put("output", output.toString());
        ObjectNode models = child(root, "models");
        child(models, "actor").put("path", SftTrainingTest.TINY_LLAMA.toString());
        child(models, "ref").put("path", PerturbedReference.under(dir).toString());
        ObjectNode data = child(root, "data");
        // the example names its data relative to the repository root
        data.put("path", EXAMPLE.getParent().getParent().resolve(data.path("path").asText()).normalize().toString());
        data.put("batch_size", 4);
        data.put("eval_size", 0);
        data.remove(List.of("eval_every", "eval_samples"));
        // one optimizer step per iteration: each data-parallel rank cuts its own rows into the
        // mini-batches, so with several the steps' samples depend on the data-parallel degree, which
        // differs between the embedded and the submitted runs
        child(root, "grpo").put("mini_batches", 1);
        ObjectNode sparkSection = child(root, "spark");
        sparkSection.put("master", "local[2]");
        child(sparkSection, "conf").put("spark.driver.host", "127.0.0.1").put("spark.driver.bindAddress", "127.0.0.1")
                .put("spark.rlhf.comm.timeoutMs", "120000")
                // the submitted driver is not a test JVM: it would profile first by default
                .put("spark.rlhf.profile", "use");
        Path config = dir.resolve(name + ".yaml");
        yaml.writeValue(config.toFile(), root);
        return config;
    }

    /**
     * {@code spark-submit --deploy-mode mode} of the jar's train command; in cluster mode the submitting
     * JVM waits for the driver to end. Two executors of two slots (one per Worker), no dynamic allocation.
     */
    private void submit(SparkDistribution spark, StandaloneCluster cluster, String mode, Path jar, Path config)
            throws Exception {
        List<String> args = new ArrayList<>(List.of("--master", cluster.masterUrl(), "--deploy-mode", mode,
                "--class", "org.sparkrlhf.jobs.Main", "--name", "StandaloneSubmitIT " + mode,
                "--conf", "spark.executor.instances=2", "--conf", "spark.executor.cores=2",
                "--conf", "spark.cores.max=4", "--conf", "spark.executor.memory=1g",
                "--conf", "spark.dynamicAllocation.enabled=false",
                "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
                "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
                // tiny tables: Spark's 200 shuffle partitions and Delta's 50 snapshot tasks only cost time
                "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.databricks.delta.snapshotPartitions=2",
                "--conf", "spark.ui.enabled=false"));
        if (mode.equals("cluster")) {
            args.addAll(List.of("--driver-memory", "1g", "--conf", "spark.standalone.submit.waitAppCompletion=true"));
        }
        // the executors compile as the other tests' do (test.java.options, root pom)
        String executorOptions = System.getProperty("spark.executor.extraJavaOptions");
        if (executorOptions != null) {
            args.addAll(List.of("--conf", "spark.executor.extraJavaOptions=" + executorOptions));
        }
        args.addAll(List.of(jar.toString(), "train", config.toString()));
        Path log = dir.resolve("submit-" + mode + ".log");
        Process submit = spark.java("2g", "org.apache.spark.deploy.SparkSubmit", args.toArray(String[]::new))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean ended = submit.waitFor(600, TimeUnit.SECONDS);
        if (!ended) {
            submit.descendants().forEach(ProcessHandle::destroyForcibly);
            submit.destroyForcibly();
        }
        String output = Files.readString(log);
        System.out.println("spark-submit --deploy-mode " + mode + " printed (Spark's INFO lines left out):\n"
                + withoutInfoLines(output));
        assertTrue(ended, "spark-submit in " + mode + " mode did not end within 600 s\n" + cluster.logTails());
        assertEquals(0, submit.exitValue(), "spark-submit in " + mode + " mode\n" + cluster.logTails());
    }

    /** Spark's INFO log lines take thousands of lines; the progress lines and warnings remain. */
    private static String withoutInfoLines(String output) {
        return output.lines().filter(l -> !l.matches("\\d\\d/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d INFO .*"))
                .collect(Collectors.joining("\n"));
    }

    /** Each iteration's samples, ordered by prompt and then response tokens (the table keeps no order). */
    private static List<List<RolloutRow>> rollouts(SparkSession session, Path output) {
        List<List<RolloutRow>> iterations = new ArrayList<>();
        for (int i = 1; i <= ITERATIONS; i++) {
            List<RolloutRow> rows = new ArrayList<>(IterationTable.rollouts(session, RunOutput.rolloutsPath(output))
                    .collectIteration("grpo-arith-tiny", i));
            assertFalse(rows.isEmpty(), output + " has no rollouts of iteration " + i);
            rows.sort(Comparator.comparing(RolloutRow::promptId).thenComparing(r -> Arrays.toString(r.responseTokens())));
            iterations.add(rows);
        }
        return iterations;
    }

    /** SHA-256 of every sample's prompt id and response tokens, in order: one line to compare runs by eye. */
    private static String digest(List<List<RolloutRow>> iterations) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (List<RolloutRow> rows : iterations) {
            for (RolloutRow r : rows) {
                sha.update((r.promptId() + Arrays.toString(r.responseTokens()) + "\n").getBytes(StandardCharsets.UTF_8));
            }
        }
        return HexFormat.of().formatHex(sha.digest(), 0, 8);
    }
}
