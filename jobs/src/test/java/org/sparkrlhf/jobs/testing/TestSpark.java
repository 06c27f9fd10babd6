package org.sparkrlhf.jobs.testing;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * Spark contexts for tests. {@link #localCluster} starts real executor JVMs (master
 * {@code local-cluster[2,2,1024]}) with two fake GPUs each, without a Spark install: SPARK_HOME
 * (set by surefire, see jobs/pom.xml) needs only an empty {@code jars/} folder, and the executors
 * get this JVM's classpath.
 */
public final class TestSpark {
    private TestSpark() {
    }

    /** Two executors of two cores and two GPUs ("0", "1") each. */
    public static SparkContext localCluster(String appName) {
        return localCluster(appName, java.util.Map.of());
    }

    /** {@link #localCluster(String)} with more settings (e.g. spark.authenticate). */
    public static SparkContext localCluster(String appName, java.util.Map<String, String> settings) {
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome == null || System.getenv("SPARK_SCALA_VERSION") == null) {
            throw new IllegalStateException("SPARK_HOME and SPARK_SCALA_VERSION must be set (jobs/pom.xml sets them for surefire)");
        }
        try {
            Files.createDirectories(Path.of(sparkHome, "jars"));
            Path script = Path.of(sparkHome, "gpu-discovery.sh");
            Files.writeString(script, "#!/bin/sh\necho '{\"name\":\"gpu\",\"addresses\":[\"0\",\"1\"]}'\n");
            Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
            SparkConf conf = new SparkConf()
                    .setMaster("local-cluster[2,2,1024]")
                    .setAppName(appName)
                    .set("spark.executor.extraClassPath", System.getProperty("java.class.path"))
                    .set("spark.executor.resource.gpu.amount", "2")
                    .set("spark.executor.resource.gpu.discoveryScript", script.toString())
                    // the standalone master only places executors that ask for GPUs on workers that have them
                    .set("spark.worker.resource.gpu.amount", "2")
                    .set("spark.worker.resource.gpu.discoveryScript", script.toString())
                    .set("spark.ui.enabled", "false")
                    .set("spark.driver.host", "127.0.0.1")
                    .set("spark.driver.bindAddress", "127.0.0.1");
            settings.forEach(conf::set);
            return new SparkContext(conf);
        } catch (IOException e) {
            throw new IllegalStateException("cannot prepare " + sparkHome, e);
        }
    }

    /** Spark's local mode: one JVM, {@code slots} task slots, no GPUs. */
    public static SparkContext local(String appName, int slots) {
        SparkConf conf = new SparkConf()
                .setMaster("local[" + slots + "]")
                .setAppName(appName)
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1");
        return new SparkContext(conf);
    }

    /**
     * A SparkSession in local mode with {@code slots} task slots and Delta Lake, as the tests read
     * and write run tables: no UI, the driver on the loopback address, few shuffle and Delta
     * snapshot partitions (tiny tables; Spark's defaults of 200 and 50 tasks only cost time).
     */
    public static SparkSession deltaSession(String appName, int slots) {
        return SparkSession.builder().master("local[" + slots + "]").appName(appName)
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.databricks.delta.snapshotPartitions", "1")
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
                .getOrCreate();
    }
}
