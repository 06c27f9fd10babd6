package org.sparkrlhf.jobs.train;

import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.ModelFolders;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.profile.RunProfiler;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.TaskGpuAmount;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code spark-rlhf train RUN.yaml [--resume]}: validates the run config, the model folders it
 * names ({@link ModelFolders}) and its plan file as far as it can without the devices
 * ({@link CallPlacements#checkPlanFile}) before anything starts, exiting with 2 and nothing written when one is
 * bad; starts (or joins, under spark-submit) the Spark application, finds the devices, and runs the
 * algorithm.
 */
public final class TrainCommand {
    static final String USAGE = "usage: spark-rlhf train RUN.yaml [--resume]";
    private static final String BARRIER_TIMEOUT = "spark.barrier.sync.timeout";
    private static final String BROADCAST_BLOCK_SIZE = "spark.broadcast.blockSize";

    private TrainCommand() {
    }

    public static int run(String[] args) {
        return run(args, System.out, System.err);
    }

    /** The train command alone (Main dispatches to {@link #run(String[])} as well). */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        String configPath = null;
        boolean resume = false;
        for (String a : args) {
            if (a.equals("--resume")) {
                resume = true;
            } else if (a.startsWith("-") || configPath != null) {
                err.println("spark-rlhf train: unexpected argument '" + a + "'");
                err.println(USAGE);
                return 2;
            } else {
                configPath = a;
            }
        }
        if (configPath == null) {
            err.println(USAGE);
            return 2;
        }
        RunConfig config;
        try {
            config = new RunConfigReader(HadoopFiles.conf()).read(configPath);
            // before Spark starts: a model folder cut short, or a plan file that cannot fit any cluster,
            // is an error naming its file, not a failed stage
            ModelFolders.check(config);
            CallPlacements.checkPlanFile(config);
            TaskGpuAmount.checkBeforeSpark(config.spark().conf());
        } catch (ConfigException | IllegalArgumentException e) {
            err.println("spark-rlhf train: " + e.getMessage());
            return 2;
        }
        SparkSession spark = start(config);
        try {
            train(spark, config, out, resume);
            return 0;
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            err.println("spark-rlhf train: " + e.getMessage());
            return 2;
        } finally {
            spark.stop();
        }
    }

    /** Runs a validated config (its model folders checked too) on a started Spark application, from the start. */
    public static void train(SparkSession spark, RunConfig config, PrintStream progress) {
        train(spark, config, progress, false);
    }

    /**
     * Runs a validated config on a started Spark application; with {@code resume}, from the newest
     * complete checkpoint under its output (from the start, said on {@code progress}, when there is none).
     * A failure that a retry can cure ({@link Recovery#curable}: a lost executor, a failed stage) restarts
     * the run in the same application, up to {@code recovery.max_restarts} times: the devices are found
     * again (a lost executor's replacement among them), every copy of the run's models leaves the
     * executors' stores, and the run resumes from its newest complete checkpoint (or the start), its
     * tables skipping the iterations they hold. Each restart is said on {@code progress} and written to the
     * metrics table at the failed iteration ({@code recovery/restart}).
     */
    public static void train(SparkSession spark, RunConfig config, PrintStream progress, boolean resume) {
        SparkContext sc = spark.sparkContext();
        boolean gpus = sc.getConf().contains("spark.executor.resource.gpu.amount");
        long timeoutMs = sc.getConf().getLong("spark.rlhf.comm.timeoutMs", 600_000L);
        Recovery recovery = new Recovery(config.recovery().maxRestarts());
        boolean fromCheckpoint = resume;
        while (true) {
            // the runner's meshes keep their ranks' connections between calls; closing it releases them
            try (BarrierCallRunner runner = new BarrierCallRunner(sc, gpus,
                    BarrierCallRunner.supportsTaskResourceProfiles(sc.master()), timeoutMs)) {
                ClusterInventory inventory = ClusterDiscovery.discover(sc, runner,
                        sc.getConf().getLong("spark.rlhf.executorWaitMs", 120_000L));
                progress.println(inventory);
                if (recovery.restarts() > 0) {
                    recovery.clearModels(runner, inventory, config);
                }
                profileFirst(spark, config, runner, inventory, progress);
                RunDriver.run(spark, config, runner, inventory, progress, fromCheckpoint);
                return;
            } catch (RunFailure f) {
                if (!recovery.restart(spark, config, f, progress)) {
                    throw f.unwrapped();
                }
                fromCheckpoint = true;
            }
        }
    }

    /**
     * With {@code spark.rlhf.profile: auto}, profiles the run's models when the planner would find no table
     * for some of them (a short run: seconds for the examples' tiny models), so that the plan's estimate
     * is of this engine on these devices; when the tables come from the cache, warms the executors up with
     * the profile's real calls instead ({@link RunProfiler#warmUp}).
     */
    private static void profileFirst(SparkSession spark, RunConfig config, BarrierCallRunner runner,
                                     ClusterInventory inventory, PrintStream progress) {
        if (!RunScenario.profileMode(config).equals("auto")) {
            return;
        }
        ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
        Map<String, ModelSpec> models = new LinkedHashMap<>();
        for (String role : RunScenario.graph(config).roles()) {
            models.put(role, RunScenario.model(config, role));
        }
        List<String> missing = RunScenario.profiles(config, models, cluster.gpu().name()).missing();
        if (!missing.isEmpty()) {
            progress.printf("profile: no table for %s on %s; profiling first%n", missing, cluster.gpu().name());
            RunProfiler.profile(RunDriver.pricedConfig(spark, config, progress), RunOutput.create(config), runner, inventory,
                    progress);
        } else {
            // the tables come from an earlier application: this one's executors have compiled nothing yet
            RunProfiler.warmUp(RunDriver.pricedConfig(spark, config, progress), RunOutput.create(config), runner, inventory,
                    progress);
        }
    }

    /**
     * The Spark application: under spark-submit the master and conf come from it (spark.master is
     * set); embedded, from the config's spark section.
     */
    public static SparkSession start(RunConfig config) {
        SparkSession.Builder builder = SparkSession.builder().appName("spark-rlhf " + config.name())
                // the rollouts, metrics and plans tables are Delta tables
                .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog");
        if (System.getProperty("spark.master") == null) {
            builder.master(config.spark().master());
            if (config.spark().master().startsWith("local")) {
                // Delta's commits and the tables' small appends shuffle; 200 partitions on one machine
                // cost seconds per iteration for nothing
                builder.config("spark.sql.shuffle.partitions", "4");
                // Delta rebuilds a table's snapshot from its log with this many tasks (default 50) on
                // every append; a run's tables are small
                builder.config("spark.databricks.delta.snapshotPartitions", "2");
            }
        }
        // the one Spark barrier wait of a run (the devices' discovery) gets the ranks' deadline, not
        // Spark's default of a year, unless the run or spark-submit sets its own
        String commTimeout = config.spark().conf().getOrDefault("spark.rlhf.comm.timeoutMs",
                System.getProperty("spark.rlhf.comm.timeoutMs", "600000"));
        if (unset(config, BARRIER_TIMEOUT)) {
            builder.config(BARRIER_TIMEOUT, Math.max(1, Long.parseLong(commTimeout) / 1000) + "s");
        }
        // Spark broadcasts every stage's task binary (a call's is about 1.5 KB) in chunks of this
        // size, each allocated whole: at the default 4 MB a humongous object for G1 per call, zeroed
        // and dropped. The embedded PPO example, last half of 60 iterations: 0.237-0.260 s per
        // iteration at 4 MB, 0.208 at 256 KB, 0.186-0.201 at 64 KB, every call faster. A run's own
        // broadcasts are task binaries and Delta's small ones (models move over the ranks' transport)
        if (unset(config, BROADCAST_BLOCK_SIZE)) {
            builder.config(BROADCAST_BLOCK_SIZE, "64k");
        }
        for (Map.Entry<String, String> e : config.spark().conf().entrySet()) {
            builder.config(e.getKey(), e.getValue());
        }
        return builder.getOrCreate();
    }

    /** Whether neither the run's conf nor spark-submit (the driver's system properties) sets {@code key}. */
    private static boolean unset(RunConfig config, String key) {
        return !config.spark().conf().containsKey(key) && System.getProperty(key) == null;
    }
}
