package org.sparkrlhf.jobs.profile;

import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.ModelFolders;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.TaskGpuAmount;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.train.RunDriver;
import org.sparkrlhf.jobs.train.RunOutput;
import org.sparkrlhf.jobs.train.TrainCommand;

import java.io.PrintStream;
import java.util.List;

/**
 * {@code spark-rlhf profile RUN.yaml}: starts the run's Spark application (embedded or under
 * spark-submit) as {@code train} would, profiles the run's models on its executors ({@link RunProfiler})
 * and stores the tables under {@code <output>/profile/} and in the cache, where {@code train} and
 * {@code plan} find them.
 */
public final class ProfileCommand {
    static final String USAGE = "usage: spark-rlhf profile RUN.yaml";

    private ProfileCommand() {
    }

    public static int run(String[] args) {
        return run(args, System.out, System.err);
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length != 1 || args[0].startsWith("-")) {
            err.println(USAGE);
            return 2;
        }
        RunConfig config;
        try {
            config = new RunConfigReader(HadoopFiles.conf()).read(args[0]);
            ModelFolders.check(config);
            TaskGpuAmount.checkBeforeSpark(config.spark().conf());
        } catch (ConfigException | IllegalArgumentException e) {
            err.println("spark-rlhf profile: " + e.getMessage());
            return 2;
        }
        SparkSession spark = TrainCommand.start(config);
        try {
            profile(spark, config, out);
            return 0;
        } catch (IllegalArgumentException e) {
            err.println("spark-rlhf profile: " + e.getMessage());
            return 2;
        } finally {
            spark.stop();
        }
    }

    /** Profiles on a started application; returns the tables' paths under the run's output. */
    public static List<String> profile(SparkSession spark, RunConfig config, PrintStream progress) {
        SparkContext sc = spark.sparkContext();
        boolean gpus = sc.getConf().contains("spark.executor.resource.gpu.amount");
        long timeoutMs = sc.getConf().getLong("spark.rlhf.comm.timeoutMs", 600_000L);
        try (BarrierCallRunner runner = new BarrierCallRunner(sc, gpus,
                BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), timeoutMs)) {
            ClusterInventory inventory = ClusterDiscovery.discover(sc, runner,
                    sc.getConf().getLong("spark.rlhf.executorWaitMs", 120_000L));
            progress.println(inventory);
            // at the lengths the run's planner will price: its data's longest prompt and answer
            return RunProfiler.profile(RunDriver.pricedConfig(spark, config, progress), RunOutput.create(config), runner,
                    inventory, progress);
        }
    }
}
