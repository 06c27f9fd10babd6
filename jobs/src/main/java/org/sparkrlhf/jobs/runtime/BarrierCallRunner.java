package org.sparkrlhf.jobs.runtime;

import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.rdd.RDD;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.ResourceProfileBuilder;
import org.apache.spark.resource.TaskResourceRequests;
import org.sparkrlhf.jobs.executor.EngineOptions;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.plan.Placement;
import scala.Tuple2;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs one model function call as a Spark barrier stage with one task per rank: rank =
 * partition id, all ranks start together (so they can rendezvous through
 * {@code BarrierTaskContext.allGather} and talk directly), each task runs the call's
 * {@link RankFunction} on its slice of the input and returns one result.
 *
 * <p>Placement: each task prefers the executor of its mesh device (a preferred location, as for
 * cached blocks); on GPU clusters whose cluster manager supports task-only resource profiles
 * (standalone, YARN, Kubernetes; not {@code local[N]}) each task also asks for one GPU, and its
 * address comes from {@code TaskContext.resources()}. Where a task actually ran is returned with
 * its result; the model store on that executor loads the shard when it does not hold it.
 *
 * <p>Engine: a rank with a GPU builds its models on the CUDA backend of that GPU and runs its
 * collectives over NCCL (see {@link RankContext#backend()} and {@link RankContext#communicator()});
 * the precision and an embedded run's GPU come from the Spark conf ({@link EngineOptions}).
 *
 * <p>The caller's thread gets its own job group and a job description naming the call, so the
 * Spark UI shows which call each job is and calls started from different threads run at once.
 */
public final class BarrierCallRunner {
    public static final String GPU = "gpu";

    private final SparkContext sc;
    private final boolean gpus;
    private final boolean taskResourceProfiles;
    private final long recvTimeoutMillis;
    private final EngineOptions engine;
    private final AtomicLong jobCounter = new AtomicLong();

    /**
     * @param gpus                 whether each rank gets a GPU (the cluster's executors have GPUs)
     * @param taskResourceProfiles whether the cluster manager supports task-only resource profiles
     *                             (see {@link #supportsTaskResourceProfiles(String)})
     * @throws IllegalArgumentException when the engine settings ({@link EngineOptions}) in the Spark
     *                                  conf are malformed or do not fit the cluster
     */
    public BarrierCallRunner(SparkContext sc, boolean gpus, boolean taskResourceProfiles, long recvTimeoutMillis) {
        if (gpus && !taskResourceProfiles && !sc.getConf().contains("spark.task.resource.gpu.amount")) {
            throw new IllegalStateException("GPU executors need either task resource profiles (a cluster manager "
                    + "other than local[N]) or spark.task.resource.gpu.amount=1");
        }
        this.engine = EngineOptions.parse(sc.getConf().get(EngineOptions.PRECISION, null),
                sc.getConf().get(EngineOptions.LOCAL_GPU, null));
        engine.checkAgainst(gpus, sc.master());
        this.sc = sc;
        this.gpus = gpus;
        this.taskResourceProfiles = taskResourceProfiles;
        this.recvTimeoutMillis = recvTimeoutMillis;
    }

    /**
     * Whether the master's cluster manager supports task-only resource profiles: Spark's local mode
     * ({@code local}, {@code local[N]}) rejects them ({@code withResources} throws, and the RDD then
     * blocks the scheduler), the others accept them with dynamic allocation off.
     */
    public static boolean supportsTaskResourceProfiles(String master) {
        return !(master.equals("local") || master.startsWith("local["));
    }

    /**
     * Runs {@code fn} once per rank, rank r on {@code inputs.get(r)}, preferring {@code mesh.get(r)}'s
     * executor when a mesh is given. Returns the ranks' results in rank order. Blocks until the
     * stage ends; an exception in any rank fails the call.
     *
     * @param description the Spark job description (shown in the UI), e.g. "actor_gen iteration 3"
     */
    public <I extends Serializable, R extends Serializable> List<RankResult<R>> run(
            String call, String description, List<DeviceSlot> mesh, List<I> inputs, RankFunction<I, R> fn) {
        return run(call, description, mesh, null, inputs, fn);
    }

    /**
     * Runs a call placed by the plan: rank r on {@code placement.devices().get(r)}, and each rank's
     * {@link RankContext} knows the placement (its layout key, its data / tensor / pipeline ranks).
     */
    public <I extends Serializable, R extends Serializable> List<RankResult<R>> run(
            String description, Placement placement, List<I> inputs, RankFunction<I, R> fn) {
        return run(placement.call(), description, placement.devices(), placement, inputs, fn);
    }

    private <I extends Serializable, R extends Serializable> List<RankResult<R>> run(
            String call, String description, List<DeviceSlot> mesh, Placement placement, List<I> inputs,
            RankFunction<I, R> fn) {
        int world = inputs.size();
        if (world == 0) {
            throw new IllegalArgumentException(call + ": a call needs at least one rank");
        }
        if (mesh != null && mesh.size() != world) {
            throw new IllegalArgumentException(call + ": " + world + " rank inputs for a mesh of " + mesh.size() + " devices");
        }
        List<Tuple2<RankInput<I>, scala.collection.immutable.Seq<String>>> elements = new ArrayList<>(world);
        for (int r = 0; r < world; r++) {
            List<String> locations = mesh == null ? List.of() : List.of(mesh.get(r).taskLocation());
            elements.add(new Tuple2<>(new RankInput<>(r, inputs.get(r)),
                    CollectionConverters.asScala(locations).toList()));
        }
        ClassTag<RankInput<I>> inputTag = classTag(RankInput.class);
        ClassTag<RankResult<R>> resultTag = classTag(RankResult.class);
        RDD<RankInput<I>> ranks = sc.makeRDD(CollectionConverters.asScala(elements).toList(), inputTag);
        RDD<RankResult<R>> results = ranks.barrier()
                .mapPartitions(new RankTask<>(call, world, gpus, recvTimeoutMillis, placement, engine, fn), false, resultTag);
        if (gpus && taskResourceProfiles) {
            results = results.withResources(oneGpuPerTask());
        }
        String group = "spark-rlhf-" + call + "-" + jobCounter.incrementAndGet();
        sc.setJobGroup(group, description, true);
        try {
            List<RankResult<R>> collected = new ArrayList<>(JavaRDD.fromRDD(results, resultTag).collect());
            collected.sort(Comparator.comparingInt(RankResult::rank));
            return collected;
        } finally {
            sc.clearJobGroup();
        }
    }

    private static ResourceProfile oneGpuPerTask() {
        TaskResourceRequests task = new TaskResourceRequests().cpus(1).resource(GPU, 1.0);
        return new ResourceProfileBuilder().require(task).build();
    }

    @SuppressWarnings("unchecked")
    private static <T> ClassTag<T> classTag(Class<?> c) {
        return (ClassTag<T>) ClassTag$.MODULE$.apply(c);
    }

    /** One rank's input, carried in its own partition. */
    record RankInput<I>(int rank, I value) implements Serializable {
    }

    /** The barrier task body: builds the rank's context from the task's and runs the call's function. */
    private static final class RankTask<I, R> extends AbstractFunction1<Iterator<RankInput<I>>, Iterator<RankResult<R>>>
            implements Serializable {
        private final String call;
        private final int world;
        private final boolean gpus;
        private final long recvTimeoutMillis;
        private final Placement placement;
        private final EngineOptions engine;
        private final RankFunction<I, R> fn;

        RankTask(String call, int world, boolean gpus, long recvTimeoutMillis, Placement placement, EngineOptions engine,
                 RankFunction<I, R> fn) {
            this.call = call;
            this.engine = engine;
            this.placement = placement;
            this.world = world;
            this.gpus = gpus;
            this.recvTimeoutMillis = recvTimeoutMillis;
            this.fn = fn;
        }

        @Override
        public Iterator<RankResult<R>> apply(Iterator<RankInput<I>> partition) {
            BarrierTaskContext task = BarrierTaskContext.get();
            int rank = task.partitionId();
            RankInput<I> input = partition.next();
            if (input.rank() != rank) {
                throw new IllegalStateException(call + ": partition " + rank + " holds the input of rank " + input.rank());
            }
            String gpu = null;
            if (gpus) {
                ResourceInformation info = task.resourcesJMap().get(GPU);
                if (info == null || info.addresses().length != 1) {
                    throw new IllegalStateException(call + " rank " + rank + ": the task was not given exactly one GPU");
                }
                gpu = info.addresses()[0];
            }
            SparkEnv env = SparkEnv.get();
            String host = env.blockManager().blockManagerId().host();
            String executorId = env.executorId();
            try (RankContext context = new RankContext(call, rank, world, executorId, host, gpu,
                    task::allGather, recvTimeoutMillis, placement, engine)) {
                // A rank that runs off its planned executor (one that was lost and replaced) finds
                // nothing in its store and loads its shard from the model's source, the last checkpoint.
                R value = fn.apply(context, input.value());
                return CollectionConverters.asScala(List.of(new RankResult<>(rank, executorId, host, gpu, value)).iterator());
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(call + " rank " + rank + " failed: " + e.getMessage(), e);
            }
        }
    }
}
