package org.sparkrlhf.jobs.runtime;

import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.rdd.RDD;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.ResourceProfileBuilder;
import org.apache.spark.resource.TaskResourceRequests;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.sparkrlhf.jobs.executor.CommSettings;
import org.sparkrlhf.jobs.executor.EngineOptions;
import org.sparkrlhf.jobs.executor.MeshConnections;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.RunSecret;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.rendezvous.RendezvousAddress;
import org.sparkrlhf.jobs.rendezvous.RendezvousClient;
import org.sparkrlhf.jobs.rendezvous.RendezvousServer;
import scala.Tuple2;
import scala.collection.Iterator;
import scala.collection.JavaConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs one model function call as a Spark barrier stage with one task per rank: rank =
 * partition id, all ranks start together (the barrier stage is kept for this gang scheduling),
 * each task runs the call's {@link RankFunction} on its slice of the input and returns one result.
 *
 * <p>Rendezvous: the ranks of a call find each other through a small TCP service on the driver
 * ({@link RendezvousServer}, started here; its address and the run's token travel in the task
 * closure), never through Spark's barrier RPCs ({@code BarrierTaskContext.barrier/allGather}),
 * whose task side polls for the reply once a second. A round that misses ranks fails within
 * {@code recvTimeoutMillis} (spark.rlhf.comm.timeoutMs) naming the call and the missing ranks.
 * Without those RPCs a barrier stage costs little more than a plain one: in Spark 4.0 a barrier
 * task does nothing barrier-specific at its end, and at its start only looks up the driver's
 * barrier coordinator (one endpoint check, a round trip to the driver). The service listens on
 * the driver's host, on {@value #RENDEZVOUS_PORT} (default: any free port).
 *
 * <p>Security: each runner makes a run secret ({@link RunSecret}, 32 random bytes) that travels to
 * the tasks only in their closure. Every connection to the rendezvous and between ranks opens with
 * a mutual HMAC challenge-response on it ({@link PeerHandshake}) and is closed when the peer fails
 * it, whatever {@code spark.authenticate} says: the rank transport is always authenticated (with
 * {@code spark.authenticate} on, the closure carrying the secret is itself shipped over Spark's
 * authenticated RPC). With {@code spark.network.crypto.enabled} on, every frame between ranks is
 * also encrypted and authenticated with AES-GCM under per-connection keys ({@code FrameCipher});
 * the rendezvous stays in the clear (it carries the ranks' host:port and mesh generations, nothing
 * secret). NCCL's own traffic (GPU ranks) is not encrypted; its unique id goes only over the mesh.
 * The frame limit each way is {@value CommSettings#MAX_FRAME_BYTES} (default 1 GiB).
 *
 * <p>Connections: a call run on a mesh of devices gets a mesh id ({@link MeshRegistry}), under
 * which each executor keeps the call's TCP mesh and NCCL communicators for the next call on the
 * same devices ({@link MeshConnections}); {@link #releaseMesh} closes them when the mesh is no
 * longer used, and an embedded run closes all of its own when its application ends.
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
public final class BarrierCallRunner implements AutoCloseable {
    public static final String GPU = "gpu";
    /** The port of the driver's rendezvous (default 0: any free port). */
    public static final String RENDEZVOUS_PORT = "spark.rlhf.rendezvous.port";
    /** Stages of a placed call re-submitted because a rank started off its executor, before one may run there. */
    static final int PLACEMENT_RETRIES = 4;
    /** Begins the failure of a rank that started on another executor than its device's (see {@link #run}). */
    static final String MISPLACED = "spark-rlhf: rank started off its device's executor";

    private final SparkContext sc;
    private final boolean gpus;
    private final boolean taskResourceProfiles;
    private final CommSettings comm;
    private final EngineOptions engine;
    private final AtomicLong jobCounter = new AtomicLong();
    private final RendezvousServer rendezvous;
    private final MeshRegistry meshes;

    /**
     * @param gpus                 whether each rank gets a GPU (the cluster's executors have GPUs)
     * @param taskResourceProfiles whether the cluster manager supports task-only resource profiles
     *                             (see {@link #supportsTaskResourceProfiles(String)})
     * @throws IllegalArgumentException when the engine settings ({@link EngineOptions}) or the
     *                                  transport's ({@link CommSettings}) in the Spark conf are
     *                                  malformed or do not fit the cluster
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
        this.comm = CommSettings.parse(recvTimeoutMillis, sc.getConf().get(CommSettings.MAX_FRAME_BYTES, null),
                sc.getConf().get(CommSettings.CHUNK_BYTES, null), sc.getConf().getBoolean(CommSettings.NETWORK_CRYPTO, false));
        String advertised = sc.getConf().get("spark.driver.host");
        RunSecret secret = RunSecret.generate();
        this.rendezvous = RendezvousServer.start(sc.getConf().get("spark.driver.bindAddress", advertised), advertised,
                sc.getConf().getInt(RENDEZVOUS_PORT, 0), recvTimeoutMillis, secret);
        // the mesh ids name a run in executors' logs; drawn apart from the secret
        this.meshes = new MeshRegistry("run-" + UUID.randomUUID().toString().substring(0, 12) + ":");
        sc.addSparkListener(new SparkListener() {
            @Override
            public void onApplicationEnd(SparkListenerApplicationEnd end) {
                ended();
            }
        });
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
        return run(call, description, mesh, null, inputs, fn, true);
    }

    /**
     * Runs a call placed by the plan: rank r on {@code placement.devices().get(r)}, and each rank's
     * {@link RankContext} knows the placement (its layout key, its data / tensor / pipeline ranks).
     */
    public <I extends Serializable, R extends Serializable> List<RankResult<R>> run(
            String description, Placement placement, List<I> inputs, RankFunction<I, R> fn) {
        return run(placement.call(), description, placement.devices(), placement, inputs, fn, true);
    }

    private <I extends Serializable, R extends Serializable> List<RankResult<R>> run(
            String call, String description, List<DeviceSlot> mesh, Placement placement, List<I> inputs,
            RankFunction<I, R> fn, boolean keepConnections) {
        int world = inputs.size();
        if (world == 0) {
            throw new IllegalArgumentException(call + ": a call needs at least one rank");
        }
        if (mesh != null && mesh.size() != world) {
            throw new IllegalArgumentException(call + ": " + world + " rank inputs for a mesh of " + mesh.size() + " devices");
        }
        List<Tuple2<RankInput<I>, scala.collection.immutable.List<String>>> elements = new ArrayList<>(world);
        for (int r = 0; r < world; r++) {
            List<String> locations = mesh == null ? List.of() : List.of(mesh.get(r).taskLocation());
            elements.add(new Tuple2<>(new RankInput<>(r, inputs.get(r)), scalaList(locations)));
        }
        // A placed call's ranks hold their models' shards on their devices' executors. Spark runs a task
        // elsewhere when its preferred executor's slots stay taken for spark.locality.wait (3 s; a table
        // commit's tasks can hold them that long), and a rank there finds no shard (a trained version
        // newer than the last checkpoint fails the call and restarts the run). Such a rank fails at once,
        // before its function, and the stage is submitted again, up to PLACEMENT_RETRIES times; the last
        // try lets ranks run anywhere (an executor lost since the plan: the call's own path handles it).
        List<String> executors = null;
        if (placement != null && mesh != null && !sc.isLocal()) {
            executors = new ArrayList<>(world);
            for (DeviceSlot d : mesh) {
                executors.add(d.executorId());
            }
        }
        for (int attempt = 0; ; attempt++) {
            boolean strict = executors != null && attempt < PLACEMENT_RETRIES;
            try {
                return runOnce(call, description, mesh, placement, elements, fn, keepConnections, world,
                        strict ? executors : null);
            } catch (Exception e) {
                // Spark's job failure (a SparkException, checked in Java's terms) is rethrown as it came
                String misplaced = strict ? misplacement(e) : null;
                if (misplaced == null) {
                    throw e;
                }
                System.err.printf("spark-rlhf: %s: a rank started off its device's executor (%s); submitting the stage "
                        + "again (%d/%d)%n", description, misplaced, attempt + 1, PLACEMENT_RETRIES);
            }
        }
    }

    /** The misplaced rank's account in a failed call (see {@link #MISPLACED}), or null when none failed so. */
    private static String misplacement(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            int at = m == null ? -1 : m.indexOf(MISPLACED);
            if (at >= 0) {
                int end = m.indexOf('\n', at);
                return m.substring(at + MISPLACED.length(), end < 0 ? m.length() : end).replaceFirst("^[: ]+", "");
            }
        }
        return null;
    }

    private <I extends Serializable, R extends Serializable> List<RankResult<R>> runOnce(
            String call, String description, List<DeviceSlot> mesh, Placement placement,
            List<Tuple2<RankInput<I>, scala.collection.immutable.List<String>>> elements, RankFunction<I, R> fn,
            boolean keepConnections, int world, List<String> executors) {
        long number = jobCounter.incrementAndGet();
        String meshId = mesh != null && keepConnections ? meshes.lend(mesh) : null;
        try {
            ClassTag<RankInput<I>> inputTag = classTag(RankInput.class);
            ClassTag<RankResult<R>> resultTag = classTag(RankResult.class);
            RDD<RankInput<I>> ranks = makeRdd(scalaList(elements), inputTag);
            RankTask<I, R> task = new RankTask<>(call, call + "#" + number, world, gpus, comm, placement,
                    engine, rendezvous.address(), meshId, executors, fn);
            RDD<RankResult<R>> results = ranks.barrier().mapPartitions(task, false, resultTag);
            if (gpus && taskResourceProfiles) {
                results = results.withResources(oneGpuPerTask());
            }
            sc.setJobGroup("spark-rlhf-" + call + "-" + number, description, true);
            // the call names the job in the UI; set, Spark does not walk the stack for a call site
            sc.setLocalProperty("callSite.short", "spark-rlhf " + call);
            sc.setLocalProperty("callSite.long", description);
            try {
                return collect(results, world);
            } finally {
                sc.clearJobGroup();
                sc.setLocalProperty("callSite.short", null);
                sc.setLocalProperty("callSite.long", null);
            }
        } finally {
            if (meshId != null) {
                meshes.giveBack(meshId);
            }
        }
    }

    /**
     * Closes the connections that executors keep for calls on {@code mesh} (see
     * {@link MeshConnections}), when no further call will run on it; a later call on it connects
     * anew. Refused (IllegalStateException) while a call on {@code mesh} runs. On a cluster this is
     * a short stage on the mesh's executors (no barrier RPC); a rank that runs off its executor
     * closes nothing, and that executor's connections go when it exits.
     */
    public void releaseMesh(List<DeviceSlot> mesh) {
        String id = meshes.forget(mesh);
        if (id == null) {
            return;
        }
        if (sc.isLocal()) {
            MeshConnections.get().release(id); // every rank of an embedded run is in this JVM
            return;
        }
        run("release_mesh", "spark-rlhf: close the connections of " + id, mesh, null,
                new ArrayList<>(Collections.nCopies(mesh.size(), 0)), (context, ignored) -> {
                    MeshConnections.get().discard(id, context.rank());
                    return Boolean.TRUE;
                }, false);
    }

    /** {@link #releaseMesh} for a placement's devices. */
    public void releaseMesh(Placement placement) {
        releaseMesh(placement.devices());
    }

    /**
     * Releases every mesh (see {@link #releaseMesh}; failures are skipped: the executor may be
     * gone) and stops the driver's rendezvous. Calls can no longer run afterwards.
     */
    @Override
    public void close() {
        if (!sc.isStopped()) {
            for (List<DeviceSlot> mesh : meshes.meshes()) {
                try {
                    releaseMesh(mesh);
                } catch (RuntimeException e) {
                    // a lost executor: its connections went with it
                }
            }
        }
        ended();
    }

    /** The application ended (or the runner was closed): no more calls. */
    private void ended() {
        rendezvous.close();
        if (sc.isLocal()) {
            MeshConnections.get().releaseAll(meshes.prefix());
        }
    }

    /**
     * The stage's results, one per partition, through {@code SparkContext.runJob} with named
     * functions and a set call site. {@code RDD.collect()} would pass Scala lambdas, which Spark's
     * closure cleaner inspects by reading their classes' bytecode from the Spark jar with ASM on
     * every job, and would walk the stack for the call site: in the PPO example, embedded, a call's
     * tasks started 15-19 ms after it was submitted with collect() and 9-12 ms without.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private <R> List<RankResult<R>> collect(RDD<RankResult<R>> results, int world) {
        List<Integer> partitions = new ArrayList<>(world);
        for (int p = 0; p < world; p++) {
            partitions.add(p);
        }
        RankResult<R>[] byRank = new RankResult[world];
        sc.runJob(results, new FirstOfPartition<R>(), (scala.collection.immutable.List) scalaList(partitions),
                new PutResult<>(byRank), classTag(RankResult.class));
        return new ArrayList<>(List.of(byRank));
    }

    /** A rank's partition holds exactly its one result. */
    private static final class FirstOfPartition<R> extends scala.runtime.AbstractFunction2<org.apache.spark.TaskContext,
            Iterator<RankResult<R>>, RankResult<R>> implements Serializable {
        @Override
        public RankResult<R> apply(org.apache.spark.TaskContext context, Iterator<RankResult<R>> partition) {
            return partition.next();
        }
    }

    /**
     * The driver's handler of each partition's result: partition = rank (the task checks it), so
     * the results land in rank order. Spark calls it on its scheduler's thread and returns from
     * runJob after the last call.
     */
    private static final class PutResult<R> extends scala.runtime.AbstractFunction2<Object, RankResult<R>, scala.runtime.BoxedUnit> {
        private final RankResult<R>[] byRank;

        PutResult(RankResult<R>[] byRank) {
            this.byRank = byRank;
        }

        @Override
        public scala.runtime.BoxedUnit apply(Object partition, RankResult<R> result) {
            byRank[(Integer) partition] = result;
            return scala.runtime.BoxedUnit.UNIT;
        }
    }

    private static ResourceProfile oneGpuPerTask() {
        TaskResourceRequests task = new TaskResourceRequests().cpus(1).resource(GPU, 1.0);
        return new ResourceProfileBuilder().require(task).build();
    }

    @SuppressWarnings("unchecked")
    /*
     * Scala 2.12 and 2.13 differ in what Seq is (collection.Seq; collection.immutable.Seq), so
     * Java code that names it compiles against one Scala only. An immutable List is both, and
     * scala.collection.JavaConverters (deprecated in 2.13, still there) makes one on both.
     */
    private static <T> scala.collection.immutable.List<T> scalaList(List<T> list) {
        return JavaConverters.asScalaBuffer(list).toList();
    }

    /** makeRDD with each element's preferred locations, whose Seq type is the Scala version's. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private <T> RDD<T> makeRdd(scala.collection.immutable.List<? extends Tuple2<T, scala.collection.immutable.List<String>>> elements,
                               ClassTag<T> tag) {
        return sc.makeRDD((scala.collection.immutable.List) elements, tag);
    }

    private static <T> ClassTag<T> classTag(Class<?> c) {
        return (ClassTag<T>) ClassTag$.MODULE$.apply(c);
    }

    /** One rank's input, carried in its own partition. */
    record RankInput<I>(int rank, I value) implements Serializable {
    }

    /**
     * The barrier task body: builds the rank's context from the task's (with the driver's
     * rendezvous, and the mesh id under which its executor keeps the call's connections) and runs
     * the call's function. A rank that fails closes the connections it kept, so that the next call
     * on the mesh connects anew.
     */
    private static final class RankTask<I, R> extends AbstractFunction1<Iterator<RankInput<I>>, Iterator<RankResult<R>>>
            implements Serializable {
        private final String call;
        private final String callId;
        private final int world;
        private final boolean gpus;
        private final CommSettings comm;
        private final Placement placement;
        private final EngineOptions engine;
        private final RendezvousAddress rendezvous;
        private final String meshId;
        /** Each rank's device's executor, when a rank must not run elsewhere; else null. */
        private final List<String> executors;
        private final RankFunction<I, R> fn;

        RankTask(String call, String callId, int world, boolean gpus, CommSettings comm, Placement placement,
                 EngineOptions engine, RendezvousAddress rendezvous, String meshId, List<String> executors,
                 RankFunction<I, R> fn) {
            this.executors = executors;
            this.call = call;
            this.callId = callId;
            this.rendezvous = rendezvous;
            this.meshId = meshId;
            this.engine = engine;
            this.placement = placement;
            this.world = world;
            this.gpus = gpus;
            this.comm = comm;
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
            if (executors != null && !executors.get(rank).equals(executorId)) {
                throw new IllegalStateException(MISPLACED + ": " + call + " rank " + rank + " on executor " + executorId
                        + ", its device on executor " + executors.get(rank));
            }
            // a retried stage is a new attempt: its ranks meet afresh
            RendezvousClient meeting = new RendezvousClient(rendezvous, callId + " attempt " + task.stageAttemptNumber(),
                    rank, world, comm.timeoutMillis(), task::isInterrupted);
            RankContext context = new RankContext(call, rank, world, executorId, host, gpu, meeting, comm,
                    placement, engine, meshId);
            boolean done = false;
            try {
                // A rank that runs off its planned executor (one that was lost and replaced) finds
                // nothing in its store and loads its shard from the model's source, the last checkpoint.
                R value = fn.apply(context, input.value());
                done = true;
                return JavaConverters.asScalaIterator(List.of(new RankResult<>(rank, executorId, host, gpu, value)).iterator());
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(call + " rank " + rank + " failed: " + e.getMessage(), e);
            } finally {
                if (done) {
                    context.close();
                } else {
                    try {
                        context.discardCommunicator();
                        context.close();
                    } catch (RuntimeException e) {
                        // the call's own failure is the one to report
                    }
                }
            }
        }
    }
}
