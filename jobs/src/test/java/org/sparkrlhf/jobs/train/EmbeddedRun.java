package org.sparkrlhf.jobs.train;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;

import java.nio.file.Path;

/**
 * A CPU Spark application started as {@code spark-rlhf train} starts one, for tests that hand
 * {@link RunDriver#run} a graph and a spec of their own: the session, the barrier-stage runner and the
 * discovered devices.
 */
record EmbeddedRun(SparkSession spark, BarrierCallRunner runner, ClusterInventory inventory) implements AutoCloseable {
    /** The validated config at {@code path}. */
    static RunConfig config(Path path) {
        return new RunConfigReader(new Configuration()).read(path.toString());
    }

    /** Starts (or joins) the application of {@code config}'s spark section and finds its devices. */
    static EmbeddedRun start(RunConfig config) {
        SparkSession spark = TrainCommand.start(config);
        SparkContext sc = spark.sparkContext();
        BarrierCallRunner runner = new BarrierCallRunner(sc, false,
                BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), 600_000L);
        return new EmbeddedRun(spark, runner, ClusterDiscovery.discover(sc, runner, 120_000L));
    }

    @Override
    public void close() {
        spark.stop();
    }
}
