package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.parallel.FloatMessage;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
 *   <li>checks that every element of its destination shard arrived exactly once, builds the
 *       destination's model object from the slices, and keeps it in its executor's store.</li>
 * </ol>
 * Between executors the bytes go over the call's TCP connections on CPU executors (see
 * {@link TcpCommunicator} for why a plain TCP transport there) and over NCCL between GPUs
 * ({@link NcclTransport}); no byte goes through the driver. The same pieces move a trained copy's
 * AdamW moments ({@link ShardTensors.View}), which are cut as its weights: that is how a checkpoint
 * gathers the optimizer state of tensor / pipeline shards onto one device.
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
        Map<String, float[]> destination = new LinkedHashMap<>();
        Map<String, Integer> strideOf = new LinkedHashMap<>();
        Map<String, long[]> filled = new LinkedHashMap<>();
        for (int i = 0; i < request.names().size(); i++) {
            int[] shape = request.shapes()[i];
            destination.put(request.names().get(i), new float[Math.multiplyExact(shape[0], shape[1])]);
            strideOf.put(request.names().get(i), shape[1]);
            filled.put(request.names().get(i), new long[1]);
        }
        int[] rankOf = new int[maxDevice(request.stageDevices()) + 1];
        for (int r = 0; r < request.stageDevices().length; r++) {
            rankOf[request.stageDevices()[r]] = r;
        }

        // 1. sends, one message per peer
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
                : context.communicator();
        // each peer's pieces as one message, read and written a chunk at a time by the transport
        ShardTensors sourceShard = source;
        Map<Integer, FloatMessage> outgoing = new LinkedHashMap<>();
        for (Map.Entry<Integer, List<ShardPiece>> e : sends.entrySet()) {
            outgoing.put(rankOf[e.getKey()], new PieceMessage(e.getValue(), name -> sourceTensor(sourceShard, request, name)));
        }
        Map<Integer, FloatMessage> incoming = new LinkedHashMap<>();
        for (Map.Entry<Integer, List<ShardPiece>> e : receives.entrySet()) {
            for (ShardPiece p : e.getValue()) {
                checkStride(p, strideOf);
            }
            incoming.put(rankOf[e.getKey()], new PieceMessage(e.getValue(), destination::get));
        }
        // TCP: each round's sends, then its receives; NCCL (GPU ranks): each round in one group
        if (comm != null) {
            comm.exchangeMessages(outgoing, incoming);
        }
        // 2. copies on this device
        for (ShardPiece p : local) {
            checkStride(p, strideOf);
            p.copy(sourceTensor(source, request, p.param()), destination.get(p.param()));
            filled.get(p.param())[0] += p.elements();
        }
        // 3. what arrived, counted
        long received = 0;
        for (Map.Entry<Integer, List<ShardPiece>> e : receives.entrySet()) {
            for (ShardPiece p : e.getValue()) {
                filled.get(p.param())[0] += p.elements();
            }
            received += incoming.get(rankOf[e.getKey()]).length();
        }
        // 4. the destination shard, whole, into the store
        if (request.destinationKey() == null) {
            return received;
        }
        for (Map.Entry<String, float[]> e : destination.entrySet()) {
            if (filled.get(e.getKey())[0] != e.getValue().length) {
                throw new IllegalStateException("reallocation of " + request.role() + " to " + request.destinationKey()
                        + ": " + filled.get(e.getKey())[0] + " of " + e.getValue().length + " elements of "
                        + e.getKey() + " arrived");
            }
        }
        Object built = switch (request.build()) {
            case TENSORS -> new ShardSet(destination, optimizerOf(source, request));
            case MODEL -> ModelShards.build(context.backend(), request.source(), request.placement(), rank(request),
                    request.destinationKey().version(), destination, null, request.valueHead());
            case TRAINED_MODEL -> ModelShards.build(context.backend(), request.source(), request.placement(), rank(request),
                    request.destinationKey().version(), destination, request.optimizer(), request.valueHead());
        };
        store.evictBefore(request.role(), request.destinationKey().version());
        store.put(request.destinationKey(), built);
        return received;
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

    private static int rank(Request request) {
        return request.destinationKey().rank();
    }

    private static float[] sourceTensor(ShardTensors source, Request request, String name) {
        if (source == null) {
            throw new IllegalStateException("reallocation of " + request.role() + ": a piece of " + name
                    + " is to be sent from a device that holds no source shard");
        }
        return source.tensor(name, request.view());
    }

    private static void checkStride(ShardPiece p, Map<String, Integer> strideOf) {
        Integer stride = strideOf.get(p.param());
        if (stride == null || stride != p.dstStride()) {
            throw new IllegalStateException("piece of " + p.param() + " for a shard " + p.dstStride()
                    + " columns wide; the destination shard is " + stride);
        }
    }

    private static int maxDevice(int[] devices) {
        int m = 0;
        for (int d : devices) {
            m = Math.max(m, d);
        }
        return m;
    }
}
