package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Carries out one model's reallocation plan: a barrier stage with one rank per device of the union
 * of the source and the destination layout (rank i on {@code stageDevices[i]}). Every rank gets the
 * pieces it sends or receives, in the plan's order, so the two ends of a pair agree on what each
 * message holds. A rank
 * <ol>
 *   <li>exchanges with every peer the message of the pieces that go between them ({@link PieceMessage},
 *       {@link Communicator#exchangeMessages}): pieces are packed and unpacked a chunk at a time
 *       ({@link CommSettings#chunkBytes()}), so no message is ever whole in memory; over TCP each
 *       round's sends never wait for the peer, see {@link TcpCommunicator}; over NCCL on GPU ranks
 *       each round's sends and receives go in one group;</li>
 *   <li>copies the pieces that stay on its device (same device: a copy in memory, nothing moves);</li>
 *   <li>checks that every element of its destination shard arrived, builds the destination's
 *       model object over the tensors the pieces went into, and keeps it in its executor's store.</li>
 * </ol>
 * Between executors the bytes go over the call's TCP connections on CPU executors (see
 * {@link TcpCommunicator} for why a plain TCP transport there) and over NCCL between GPUs
 * ({@link NcclTransport}); no byte goes through the driver. The same pieces move a trained copy's
 * AdamW moments ({@link ShardTensors.View}), which are cut as its weights: that is how a checkpoint
 * gathers the optimizer state of tensor / pipeline shards onto one device.
 *
 * <p>The destination shard is allocated on the rank's backend before anything arrives (a model's
 * parameter tensors), and every piece goes straight into its place there: from the device chunk
 * NCCL received into, by device copies, or from the host chunk TCP received into, by ranged uploads.
 * So the destination never holds a whole tensor on the host, and a model is not uploaded a second
 * time. Sources are read by ranges the same way. Gathered moments are the exception: they land in
 * host arrays, as the checkpoint writer reads them (see {@code Destination.allocate}).
 */
public final class ReallocationCall implements RankFunction<ReallocationCall.Request, Long> {
    /** What the destination keeps: the slices alone, a model for inference, or a model with a fresh optimizer. */
    public enum Build {
        TENSORS, MODEL, TRAINED_MODEL
    }

    /**
     * One rank's part: the stage's devices and executors (by rank), the source shard's store key
     * (null when this device is not in the source layout), the destination's key and shard shapes
     * (null / empty when it is not in the destination layout), its pieces, and how to build the
     * destination ({@code placement} and {@code source}'s config.json for models; {@code valueHead}:
     * the model has a value head in place of the config's LM head, as a critic started from a causal LM).
     * {@code view} says which tensors of the source move: its weights, or (to {@link Build#TENSORS}
     * only) its AdamW first or second moment, which have the weights' shapes and cut, so the same
     * pieces move them.
     */
    public record Request(String role, int[] stageDevices, String[] stageExecutors, ModelStore.Key sourceKey,
                          ModelStore.Key destinationKey, List<String> names, int[][] shapes, List<ShardPiece> pieces,
                          Build build, ModelSource source, OptimizerConfig optimizer, Placement placement,
                          boolean valueHead, ShardTensors.View view)
            implements Serializable {
        public Request {
            if (view != ShardTensors.View.WEIGHTS && build != Build.TENSORS) {
                throw new IllegalArgumentException("reallocation of " + role + ": the " + view
                        + " moves as tensors (Build.TENSORS), not into a " + build);
            }
        }
    }

    @Override
    public Long apply(RankContext context, Request request) {
        int rank = context.rank();
        int device = request.stageDevices()[rank];
        if (!request.stageExecutors()[rank].equals(context.executorId())) {
            throw new IllegalStateException("reallocation of " + request.role() + ": rank " + rank + " (device " + device
                    + ") ran on executor " + context.executorId() + " instead of " + request.stageExecutors()[rank]);
        }
        ModelStore store = ModelStore.get();
        ShardTensors source = null;
        if (request.sourceKey() != null) {
            source = store.find(request.sourceKey());
            if (source == null) {
                throw new IllegalStateException("reallocation of " + request.role() + ": executor " + context.executorId()
                        + " does not hold " + request.sourceKey() + " (lost executor?)");
            }
        }
        Outcome outcome = move(request, rank, request.destinationKey() == null ? null : context.backend(),
                context::communicator, source);
        if (request.destinationKey() != null) {
            store.evictBefore(request.role(), request.destinationKey().version());
            store.put(request.destinationKey(), outcome.built());
        }
        return outcome.received();
    }

    /** What a rank's part of a reallocation left: the floats it received, and the destination's object (null if none). */
    record Outcome(long received, Object built) {
    }

    /**
     * Rank {@code rank}'s part of the reallocation, from {@code source} (null when this rank holds no
     * source shard) into a destination allocated on {@code backend} before anything arrives (null when
     * the rank has no destination), over {@code communicator} (asked for only when pieces move between
     * devices or the stage has several ranks).
     */
    static Outcome move(Request request, int rank, Backend backend, Supplier<Communicator> communicator,
                        ShardTensors source) {
        int device = request.stageDevices()[rank];
        int[] rankOf = new int[maxDevice(request.stageDevices()) + 1];
        for (int r = 0; r < request.stageDevices().length; r++) {
            rankOf[request.stageDevices()[r]] = r;
        }
        Map<Integer, List<ShardPiece>> sends = new LinkedHashMap<>();
        Map<Integer, List<ShardPiece>> receives = new LinkedHashMap<>();
        List<ShardPiece> local = new ArrayList<>();
        for (ShardPiece p : request.pieces()) {
            if (p.srcDevice() == device && p.dstDevice() == device) {
                local.add(p);
            } else if (p.srcDevice() == device) {
                sends.computeIfAbsent(p.dstDevice(), k -> new ArrayList<>()).add(p);
            } else if (p.dstDevice() == device) {
                receives.computeIfAbsent(p.srcDevice(), k -> new ArrayList<>()).add(p);
            } else {
                throw new IllegalArgumentException("device " + device + " was given a piece between devices "
                        + p.srcDevice() + " and " + p.dstDevice());
            }
        }
        Communicator comm = sends.isEmpty() && receives.isEmpty() && request.stageDevices().length == 1 ? null
                : communicator.get();
        Destination destination = request.destinationKey() == null ? Destination.NONE : Destination.allocate(request, backend);
        try {
            for (List<ShardPiece> pieces : receives.values()) {
                pieces.forEach(destination::check);
            }
            local.forEach(destination::check);
            // 1. each peer's pieces as one message, read and written a chunk at a time by the transport:
            // TCP: each round's sends, then its receives; NCCL (GPU ranks): each round in one group
            ShardSlices sourceSlices = sends.isEmpty() && local.isEmpty() ? null : sourceSlices(source, request);
            Map<Integer, FloatMessage> outgoing = new LinkedHashMap<>();
            for (Map.Entry<Integer, List<ShardPiece>> e : sends.entrySet()) {
                outgoing.put(rankOf[e.getKey()], new PieceMessage(e.getValue(), sourceSlices));
            }
            Map<Integer, FloatMessage> incoming = new LinkedHashMap<>();
            for (Map.Entry<Integer, List<ShardPiece>> e : receives.entrySet()) {
                incoming.put(rankOf[e.getKey()], new PieceMessage(e.getValue(), destination.slices));
            }
            if (comm != null) {
                comm.exchangeMessages(outgoing, incoming);
            }
            // 2. copies on this device
            int chunk = chunkFloats(comm);
            for (ShardPiece p : local) {
                copyLocal(p, sourceSlices, destination.slices, backend, chunk);
                destination.arrived(p);
            }
            // 3. what arrived, counted
            long received = 0;
            for (Map.Entry<Integer, List<ShardPiece>> e : receives.entrySet()) {
                e.getValue().forEach(destination::arrived);
                received += incoming.get(rankOf[e.getKey()]).length();
            }
            if (request.destinationKey() == null) {
                return new Outcome(received, null);
            }
            // 4. the destination, over what arrived in place
            destination.checkComplete(request);
            Object built = switch (request.build()) {
                case TENSORS -> destination.tensors(optimizerOf(source, request));
                case MODEL -> ModelShards.build(destination.model, request.destinationKey().version(), null);
                case TRAINED_MODEL -> ModelShards.build(destination.model, request.destinationKey().version(),
                        request.optimizer());
            };
            return new Outcome(received, built);
        } catch (RuntimeException | Error e) {
            destination.free();
            throw e;
        }
    }

    /** The floats a local copy stages at most when it cannot copy on the device: the transport's chunk. */
    private static int chunkFloats(Communicator comm) {
        long bytes = comm == null ? Collective.DEFAULT_CHUNK_BYTES : comm.chunkBytes();
        return (int) Math.max(1, Math.min(bytes / Float.BYTES, Integer.MAX_VALUE - 8));
    }

    /**
     * A piece that stays on this device: row by row on the backend when the source's and the
     * destination's slices are tensors of it, else through a host array of at most {@code chunk}.
     */
    private static void copyLocal(ShardPiece p, ShardSlices from, ShardSlices to, Backend backend, int chunk) {
        Tensor src = backend == null ? null : from.tensorOn(backend, p.param());
        Tensor dst = backend == null ? null : to.tensorOn(backend, p.param());
        if (src != null && dst != null && p.cols() == p.srcStride() && p.cols() == p.dstStride()) {
            // whole rows at both ends: one contiguous range
            backend.copyRange(dst, (long) p.dstRow() * p.dstStride(), src, (long) p.srcRow() * p.srcStride(), p.elements());
            return;
        }
        if (src != null && dst != null) {
            for (int r = 0; r < p.rows(); r++) {
                backend.copyRange(dst, (long) (p.dstRow() + r) * p.dstStride() + p.dstCol(), src,
                        (long) (p.srcRow() + r) * p.srcStride() + p.srcCol(), p.cols());
            }
            return;
        }
        float[] staged = new float[Math.min(chunk, p.elements())];
        for (int first = 0; first < p.elements(); first += staged.length) {
            int n = Math.min(staged.length, p.elements() - first);
            p.runs(first, n, true, (shardAt, offset, k) -> from.read(p.param(), shardAt, staged, offset, k));
            p.runs(first, n, false, (shardAt, offset, k) -> to.write(p.param(), shardAt, staged, offset, k));
        }
    }

    /**
     * The destination shard, allocated before anything arrives: a model's parameter tensors on the
     * rank's backend, each parameter's slice as a tensor of it (weights as tensors), or host arrays
     * (moments: see {@link #allocate}); pieces go straight into place, and every parameter counts
     * the elements that arrived.
     */
    private static final class Destination {
        static final Destination NONE = new Destination(null, null, Map.of(), Map.of(), null);

        final ModelShards.Allocated model;
        final Backend backend;
        final Map<String, Tensor> tensors;
        final Map<String, float[]> arrays;
        final ShardSlices slices;
        final Map<String, long[]> filled = new LinkedHashMap<>();
        final Map<String, Integer> strideOf = new LinkedHashMap<>();
        final Map<String, Long> sizeOf = new LinkedHashMap<>();

        private Destination(ModelShards.Allocated model, Backend backend, Map<String, Tensor> tensors,
                            Map<String, float[]> arrays, ShardSlices slices) {
            this.model = model;
            this.backend = backend;
            this.tensors = tensors;
            this.arrays = arrays;
            this.slices = slices;
        }

        /**
         * A model's parameters on {@code backend} (their names and sizes must be the request's); a
         * weights' shard set as tensors of {@code backend}; a moments' shard set as host arrays, as
         * the checkpoint writer reads them: gathered next to a whole copy of the weights on one
         * device, a model's two moments in fp32 would not fit it (a 7B model: 28 GB of weights and 56
         * GB of moments on an 80 GB GPU), and the save consumes them on the host.
         */
        static Destination allocate(Request request, Backend backend) {
            Destination d;
            if (request.build() != Build.TENSORS) {
                ModelShards.Allocated model = ModelShards.allocate(backend, request.source(), request.placement(),
                        request.destinationKey().rank(), request.valueHead());
                d = new Destination(model, backend, model.tensors(), null, ShardSlices.ofTensors(backend, model.tensors()::get));
                if (!model.tensors().keySet().equals(new java.util.HashSet<>(request.names()))) {
                    model.free();
                    throw new IllegalStateException("reallocation of " + request.role() + " to " + request.destinationKey()
                            + ": the plan moves " + request.names() + ", the shard holds " + model.tensors().keySet());
                }
            } else if (request.view() == ShardTensors.View.WEIGHTS) {
                Map<String, Tensor> tensors = new LinkedHashMap<>();
                for (int i = 0; i < request.names().size(); i++) {
                    tensors.put(request.names().get(i), backend.allocate(DType.F32, request.shapes()[i]));
                }
                d = new Destination(null, backend, tensors, null, ShardSlices.ofTensors(backend, tensors::get));
            } else {
                Map<String, float[]> arrays = new LinkedHashMap<>();
                for (int i = 0; i < request.names().size(); i++) {
                    int[] shape = request.shapes()[i];
                    arrays.put(request.names().get(i), new float[Math.multiplyExact(shape[0], shape[1])]);
                }
                d = new Destination(null, null, Map.of(), arrays, ShardSlices.ofArrays(arrays::get));
            }
            for (int i = 0; i < request.names().size(); i++) {
                String name = request.names().get(i);
                int[] shape = request.shapes()[i];
                long size = (long) shape[0] * shape[1];
                d.strideOf.put(name, shape[1]);
                d.sizeOf.put(name, size);
                d.filled.put(name, new long[1]);
                Tensor t = d.tensors.get(name);
                if (t != null && t.numel() != size) {
                    d.free();
                    throw new IllegalStateException("reallocation of " + request.role() + " to " + request.destinationKey()
                            + ": '" + name + "' is " + t.describe() + " in the shard, " + shape[0] + " x " + shape[1]
                            + " in the plan");
                }
            }
            return d;
        }

        /** The piece is cut for this shard's width. */
        void check(ShardPiece p) {
            Integer stride = strideOf.get(p.param());
            if (stride == null || stride != p.dstStride()) {
                throw new IllegalStateException("piece of " + p.param() + " for a shard " + p.dstStride()
                        + " columns wide; the destination shard is " + stride);
            }
        }

        void arrived(ShardPiece p) {
            filled.get(p.param())[0] += p.elements();
        }

        /** Every element of every parameter arrived (as many elements as the slice has). */
        void checkComplete(Request request) {
            for (Map.Entry<String, Long> e : sizeOf.entrySet()) {
                if (filled.get(e.getKey())[0] != e.getValue()) {
                    throw new IllegalStateException("reallocation of " + request.role() + " to " + request.destinationKey()
                            + ": " + filled.get(e.getKey())[0] + " of " + e.getValue() + " elements of "
                            + e.getKey() + " arrived");
                }
            }
        }

        ShardSet tensors(ShardSet.OptimizerSteps optimizer) {
            return arrays != null ? new ShardSet(arrays, optimizer) : ShardSet.onBackend(backend, tensors, optimizer);
        }

        /** Frees what was allocated on the backend (a reallocation that failed). */
        void free() {
            if (model != null) {
                model.free();
            } else if (backend != null) {
                tensors.values().forEach(backend::free);
            }
        }
    }

    /**
     * Which optimizer gathered moments come from (null for weights): the source copy on this very
     * device, whose step count and settings every rank of the source shares. A moment's destination
     * must therefore hold a source shard too (a whole copy on the home's first device does).
     */
    private static ShardSet.OptimizerSteps optimizerOf(ShardTensors source, Request request) {
        if (request.view() == ShardTensors.View.WEIGHTS) {
            return null;
        }
        if (!(source instanceof ResidentModel copy) || !copy.hasOptimizer()) {
            throw new IllegalStateException("reallocation of " + request.role() + "'s " + request.view() + " to "
                    + request.destinationKey() + ": the destination's device holds no trained source copy to take "
                    + "the optimizer's step count from (a moment's destination must be on a device of its source)");
        }
        return new ShardSet.OptimizerSteps(copy.optimizer().stepCount(), copy.optimizer().hyper());
    }

    /** The source's slices of the request's view, read by ranges; an error on a device that holds no source shard. */
    private static ShardSlices sourceSlices(ShardTensors source, Request request) {
        if (source == null) {
            throw new IllegalStateException("reallocation of " + request.role()
                    + ": pieces are to be sent from a device that holds no source shard");
        }
        return source.slices(request.view());
    }

    private static int maxDevice(int[] devices) {
        int m = 0;
        for (int d : devices) {
            m = Math.max(m, d);
        }
        return m;
    }
}
