package org.sparkrlhf.jobs.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.config.RunConfigReader;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.planner.spec.ClusterSpec;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code spark-rlhf plan --config RUN.yaml [--json]}: the plan a training run would start with,
 * without starting Spark. The cluster is the one the config's Spark master will give (local[N]: one
 * executor of N slots; local-cluster[E,C,M]: E executors of C slots; a cluster manager:
 * spark.executor.instances x spark.executor.cores, or GPUs per executor), with devices numbered as
 * discovery numbers them; the plan follows {@code plan.mode} as {@code train} does. Prints a table,
 * or with {@code --json} the plan JSON (which {@code plan.mode: file} reads back).
 */
public final class RunPlanCommand {
    static final String USAGE = "usage: spark-rlhf plan --config RUN.yaml [--json]";

    private RunPlanCommand() {
    }

    /** Whether {@code plan}'s arguments name a run config (a YAML with models:), not a planner scenario. */
    public static boolean isRunConfig(String[] args) {
        String file = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--config") && i + 1 < args.length) {
                file = args[i + 1];
            } else if (args[i].startsWith("--config=")) {
                file = args[i].substring("--config=".length());
            }
        }
        if (file == null) {
            return false;
        }
        try {
            // on any Hadoop file system, as the run config it may be
            if (!HadoopFiles.exists(file)) {
                return false;
            }
            JsonNode root = new ObjectMapper(new YAMLFactory()).readTree(HadoopFiles.read(file));
            return root != null && root.isObject() && root.has("models");
        } catch (IOException | UncheckedIOException | IllegalArgumentException e) {
            return false;
        }
    }

    public static int run(String[] args, PrintStream out, PrintStream err) {
        String file = null;
        boolean json = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--json")) {
                json = true;
            } else if (a.equals("--config") && i + 1 < args.length) {
                file = args[++i];
            } else if (a.startsWith("--config=")) {
                file = a.substring("--config=".length());
            } else {
                err.println("spark-rlhf plan: with a run config only --json is read; unexpected '" + a + "'");
                err.println(USAGE);
                return 2;
            }
        }
        if (file == null) {
            err.println(USAGE);
            return 2;
        }
        try {
            RunConfig config = new RunConfigReader(HadoopFiles.conf()).read(file);
            ClusterSpec cluster = RunScenario.cluster(config);
            CallPlacements plan = CallPlacements.choose(config, inventory(cluster, !cluster.gpu().name().equals("cpu")));
            out.print(json ? plan.planJson() + System.lineSeparator() : plan.describe());
            return 0;
        } catch (ConfigException | IllegalArgumentException | UnsupportedOperationException e) {
            err.println("spark-rlhf plan: " + e.getMessage());
            return 2;
        }
    }

    /** The devices discovery would number on {@code cluster}: node by node, device by device. */
    static ClusterInventory inventory(ClusterSpec cluster, boolean gpus) {
        List<DeviceSlot> devices = new ArrayList<>();
        for (int n = 0; n < cluster.nodes(); n++) {
            for (int d = 0; d < cluster.gpusPerNode(); d++) {
                // CPU nodes are executors of one host; GPU nodes are hosts with one executor each
                String host = gpus ? "node" + n : "localhost";
                devices.add(new DeviceSlot(devices.size(), gpus ? n : 0, host, Integer.toString(n),
                        gpus ? Integer.toString(d) : "cpu" + d, gpus));
            }
        }
        return new ClusterInventory(devices, gpus);
    }
}
