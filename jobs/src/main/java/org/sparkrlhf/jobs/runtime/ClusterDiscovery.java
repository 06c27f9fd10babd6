package org.sparkrlhf.jobs.runtime;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds the cluster's devices from the driver: waits for the executors, works out how many task
 * slots the calls can use (one per GPU on GPU executors, else one per {@code spark.task.cpus}
 * cores), and then runs one barrier stage with a task on every slot. Each task reports its
 * executor, host and GPU address (from its resources); as a barrier stage holds every slot at
 * once, every GPU is reported exactly once.
 */
public final class ClusterDiscovery {
    private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\d+)?])?");
    private static final Pattern LOCAL_CLUSTER = Pattern.compile("local-cluster\\[\\s*(\\d+)\\s*,\\s*(\\d+)\\s*,\\s*(\\d+)\\s*]");

    private ClusterDiscovery() {
    }

    /** How many executors and slots the driver expects, from the master and the conf. */
    public record Expectation(int executors, int slotsPerExecutor, boolean gpus) {
    }

    public static Expectation expect(SparkConf conf) {
        String master = conf.get("spark.master", "local[*]");
        int taskCpus = conf.getInt("spark.task.cpus", 1);
        boolean gpus = conf.contains("spark.executor.resource.gpu.amount");
        TaskGpuAmount.check(conf.get(TaskGpuAmount.KEY, null));
        Matcher local = LOCAL.matcher(master);
        if (local.matches()) {
            if (gpus) {
                throw new IllegalStateException("GPU executors need a cluster manager: Spark's local mode (" + master
                        + ") cannot give tasks GPUs; use local-cluster, standalone, YARN or Kubernetes");
            }
            String n = local.group(1);
            int cores = n == null ? 1 : n.equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(n);
            return new Expectation(1, Math.max(1, cores / taskCpus), false);
        }
        int executors;
        int cores;
        Matcher cluster = LOCAL_CLUSTER.matcher(master);
        if (cluster.matches()) {
            executors = Integer.parseInt(cluster.group(1));
            cores = Integer.parseInt(cluster.group(2));
        } else {
            if (!conf.contains("spark.executor.instances")) {
                throw new IllegalStateException("set spark.executor.instances: the run places every call on known "
                        + "executors, so it needs a fixed number of them (and no dynamic allocation)");
            }
            if (!conf.contains("spark.executor.cores")) {
                throw new IllegalStateException("set spark.executor.cores: the run needs each executor's task slots");
            }
            executors = conf.getInt("spark.executor.instances", 0);
            cores = conf.getInt("spark.executor.cores", 1);
        }
        if (conf.getBoolean("spark.dynamicAllocation.enabled", false)) {
            throw new IllegalStateException("spark.dynamicAllocation.enabled must be false: barrier stages need "
                    + "all of a call's executors at once, and a plan places calls on fixed executors");
        }
        int cpuSlots = cores / taskCpus;
        if (!gpus) {
            return new Expectation(executors, cpuSlots, false);
        }
        int gpusPerExecutor = (int) Math.floor(Double.parseDouble(conf.get("spark.executor.resource.gpu.amount")));
        if (cpuSlots < gpusPerExecutor) {
            throw new IllegalStateException("each executor has " + gpusPerExecutor + " GPUs but only " + cores
                    + " cores (" + cpuSlots + " task slots); a call runs one task per GPU, so give at least "
                    + gpusPerExecutor * taskCpus + " cores (spark.executor.cores)");
        }
        return new Expectation(executors, gpusPerExecutor, true);
    }

    /**
     * Waits (up to {@code waitMillis}) for the expected executors to register, then runs the
     * discovery stage. Fails with a clear message when executors are missing.
     */
    public static ClusterInventory discover(SparkContext sc, BarrierCallRunner runner, long waitMillis) {
        Expectation expected = expect(sc.getConf());
        boolean local = sc.isLocal();
        long deadline = System.currentTimeMillis() + waitMillis;
        int registered = registeredExecutors(sc, local);
        while (registered < expected.executors() && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for executors", e);
            }
            registered = registeredExecutors(sc, local);
        }
        if (registered < expected.executors()) {
            throw new IllegalStateException("only " + registered + " of " + expected.executors()
                    + " executors registered within " + waitMillis + " ms");
        }
        int slots = expected.executors() * expected.slotsPerExecutor();
        List<Integer> inputs = new ArrayList<>(Collections.nCopies(slots, 0));
        List<RankResult<Found>> found = runner.run("discovery", "spark-rlhf: find the cluster's devices", null, inputs,
                (context, ignored) -> {
                    // CPU slots have no address: number them by their order among the ranks of one executor.
                    String[] executors = context.allGather(context.executorId());
                    int ordinal = 0;
                    for (int r = 0; r < context.rank(); r++) {
                        if (executors[r].equals(context.executorId())) {
                            ordinal++;
                        }
                    }
                    String address = context.gpuAddress() != null ? context.gpuAddress() : "cpu" + ordinal;
                    return new Found(context.host(), context.executorId(), address);
                });
        return inventory(found.stream().map(RankResult::value).toList(), expected.gpus());
    }

    private static int registeredExecutors(SparkContext sc, boolean local) {
        int all = sc.statusTracker().getExecutorInfos().length;
        return local ? all : all - 1; // on a cluster the driver is listed too
    }

    /** One slot as a discovery task saw it. */
    record Found(String host, String executorId, String address) implements Serializable {
    }

    /** Orders the found slots by host, executor and address, and numbers them. */
    static ClusterInventory inventory(List<Found> found, boolean gpus) {
        Set<String> seen = new HashSet<>();
        for (Found f : found) {
            if (!seen.add(f.executorId() + "/" + f.address())) {
                throw new IllegalStateException("device " + f.address() + " of executor " + f.executorId()
                        + " was reported twice; are GPU addresses shared between tasks?");
            }
        }
        List<Found> sorted = new ArrayList<>(found);
        sorted.sort(Comparator.comparing(Found::host)
                .thenComparing(Found::executorId, ClusterDiscovery::compareNatural)
                .thenComparing(Found::address, ClusterDiscovery::compareNatural));
        Map<String, Integer> nodes = new LinkedHashMap<>();
        List<DeviceSlot> devices = new ArrayList<>();
        for (Found f : sorted) {
            int node = nodes.computeIfAbsent(f.host(), h -> nodes.size());
            devices.add(new DeviceSlot(devices.size(), node, f.host(), f.executorId(), f.address(), gpus));
        }
        return new ClusterInventory(devices, gpus);
    }

    /** Compares "10" after "9" (executor ids and GPU addresses are usually numbers). */
    static int compareNatural(String a, String b) {
        String da = a.replaceAll("\\D", "");
        String db = b.replaceAll("\\D", "");
        String pa = a.replaceAll("\\d", "");
        String pb = b.replaceAll("\\d", "");
        int prefix = pa.compareTo(pb);
        if (prefix != 0 || da.isEmpty() || db.isEmpty()) {
            return prefix != 0 ? prefix : a.compareTo(b);
        }
        int byLength = Integer.compare(da.length(), db.length());
        return byLength != 0 ? byLength : da.compareTo(db);
    }
}
