package org.sparkrlhf.jobs.bench;

import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterDiscovery;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;

import scala.collection.Iterator;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a model function call costs before any work: N empty two-rank calls (each rank returns its
 * rank) and N small real ones (each rank all-reduces 4096 floats with the other over the call's
 * communicator, as a data-parallel train step does with its gradients), run one after the other
 * through {@link BarrierCallRunner}, embedded ({@code local[2]}) and on two executor JVMs
 * ({@code local-cluster[2,1,1024]}). Prints milliseconds per call (median and mean) and checks every
 * all-reduce's sum. Beside them, Spark's own floor: a two-task job, plain and barrier, that does
 * nothing. The peer, in the same run: a few empty calls whose ranks meet once through Spark's own
 * barrier RPC ({@code BarrierTaskContext.allGather}, which polls its reply once a second).
 *
 * <p>Run with {@code tools/bench-call-overhead.sh [N]} (it compiles the jobs module and its
 * dependencies, and sets up the empty SPARK_HOME that local-cluster's executor launcher needs).
 */
public final class CallOverheadBenchmark {
    private static final int FLOATS = 4096;
    private static final int WARM_UP = 10;

    private CallOverheadBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        List<String> masters = args.length > 1 ? List.of(args).subList(1, args.length)
                : List.of("local[2]", "local-cluster[2,1,1024]");
        System.out.printf("%-26s %-18s %6s %10s %10s%n", "master", "call", "calls", "median ms", "mean ms");
        for (String master : masters) {
            SparkContext sc = new SparkContext(conf(master));
            try {
                BarrierCallRunner runner = new BarrierCallRunner(sc, false,
                        BarrierCallRunner.supportsTaskResourceProfiles(master), 60_000);
                ClusterInventory inventory = ClusterDiscovery.discover(sc, runner, 60_000);
                // on local-cluster, the two ranks on different executors: their messages cross JVMs
                List<DeviceSlot> mesh = List.of(inventory.device(0), inventory.device(inventory.size() - 1));
                Map<String, Runnable> calls = new LinkedHashMap<>();
                calls.put("empty", () -> empty(runner, mesh));
                calls.put("allreduce", () -> allReduce(runner, mesh));
                calls.put("spark_job", () -> sparkJob(sc, false));
                calls.put("spark_barrier_job", () -> sparkJob(sc, true));
                measure(master, calls, n);
                Map<String, Runnable> peer = new LinkedHashMap<>();
                peer.put("spark_allgather", () -> sparkAllGather(runner, mesh));
                measure(master, peer, Math.min(n, 5));
            } finally {
                sc.stop();
            }
        }
    }

    /**
     * Warms every kind of call up (the JIT compiles Spark's scheduler and our task path only after
     * dozens of jobs: measured first, the first kind would pay for it), then times them in
     * interleaved rounds, so that a change in the machine's load falls on every kind alike.
     */
    private static void measure(String master, Map<String, Runnable> calls, int n) {
        for (int i = 0; i < WARM_UP; i++) {
            calls.values().forEach(Runnable::run);
        }
        Map<String, double[]> ms = new LinkedHashMap<>();
        calls.keySet().forEach(name -> ms.put(name, new double[n]));
        for (int i = 0; i < n; i++) {
            for (Map.Entry<String, Runnable> call : calls.entrySet()) {
                long start = System.nanoTime();
                call.getValue().run();
                ms.get(call.getKey())[i] = (System.nanoTime() - start) / 1e6;
            }
        }
        for (Map.Entry<String, double[]> e : ms.entrySet()) {
            double[] times = e.getValue();
            double total = Arrays.stream(times).sum();
            Arrays.sort(times);
            double median = n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
            System.out.printf("%-26s %-18s %6d %10.1f %10.1f%n", master, e.getKey(), n, median, total / n);
        }
    }

    private static void empty(BarrierCallRunner runner, List<DeviceSlot> mesh) {
        List<RankResult<Integer>> results = runner.run("bench_empty", "bench: empty call", mesh, List.of(0, 1),
                (context, input) -> context.rank());
        for (RankResult<Integer> r : results) {
            if (r.value() != r.rank()) {
                throw new IllegalStateException("rank " + r.rank() + " returned " + r.value());
            }
        }
    }

    /** The peer: an empty call whose ranks meet once through Spark's barrier RPC, as calls did before. */
    private static void sparkAllGather(BarrierCallRunner runner, List<DeviceSlot> mesh) {
        List<RankResult<Integer>> results = runner.run("bench_spark_allgather", "bench: Spark allGather", mesh,
                List.of(0, 1), (context, input) -> BarrierTaskContext.get().allGather(String.valueOf(input)).length);
        for (RankResult<Integer> r : results) {
            if (r.value() != 2) {
                throw new IllegalStateException("rank " + r.rank() + " gathered " + r.value() + " strings");
            }
        }
    }

    /**
     * Spark's own floor, for comparison: a two-task job (plain or barrier) whose tasks return their
     * partition's element, with no rendezvous, no placement and none of the runtime's closure.
     */
    private static void sparkJob(SparkContext sc, boolean barrier) {
        JavaRDD<Integer> ranks = JavaSparkContext.fromSparkContext(sc).parallelize(List.of(0, 1), 2);
        List<Integer> out = barrier
                ? ranks.rdd().barrier().mapPartitions(new Identity(), false, ClassTag$.MODULE$.apply(Integer.class)).toJavaRDD().collect()
                : ranks.map(x -> x).collect();
        if (!out.equals(List.of(0, 1))) {
            throw new IllegalStateException("a two-task job returned " + out);
        }
    }

    private static final class Identity extends AbstractFunction1<Iterator<Integer>, Iterator<Integer>> implements Serializable {
        @Override
        public Iterator<Integer> apply(Iterator<Integer> partition) {
            return partition;
        }
    }

    private static void allReduce(BarrierCallRunner runner, List<DeviceSlot> mesh) {
        List<float[]> inputs = new ArrayList<>();
        for (int rank = 0; rank < 2; rank++) {
            float[] values = new float[FLOATS];
            for (int i = 0; i < FLOATS; i++) {
                values[i] = i + rank * 0.5f;
            }
            inputs.add(values);
        }
        List<RankResult<float[]>> results = runner.run("bench_allreduce", "bench: all-reduce call", mesh, inputs,
                (context, input) -> {
                    float[] buffer = input.clone();
                    context.communicator().allReduceSum(buffer);
                    return buffer;
                });
        for (RankResult<float[]> r : results) {
            for (int i = 0; i < FLOATS; i++) {
                // i + (i + 0.5): exact in float for these sizes
                if (r.value()[i] != 2f * i + 0.5f) {
                    throw new IllegalStateException("rank " + r.rank() + " element " + i + ": " + r.value()[i]);
                }
            }
        }
    }

    private static SparkConf conf(String master) throws IOException {
        SparkConf conf = new SparkConf().setMaster(master).setAppName("call-overhead-benchmark")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1");
        if (master.startsWith("local-cluster")) {
            String sparkHome = System.getenv("SPARK_HOME");
            if (sparkHome == null || System.getenv("SPARK_SCALA_VERSION") == null) {
                throw new IllegalStateException("local-cluster needs SPARK_HOME (with a jars/ folder) and "
                        + "SPARK_SCALA_VERSION; tools/bench-call-overhead.sh sets them");
            }
            Files.createDirectories(Path.of(sparkHome, "jars"));
            conf.set("spark.executor.extraClassPath", System.getProperty("java.class.path"));
        }
        return conf;
    }
}
