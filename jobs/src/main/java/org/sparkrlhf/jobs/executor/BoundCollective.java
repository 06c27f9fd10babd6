package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.List;
import java.util.Map;

/**
 * The tensor- or pipeline-parallel group of a resident sharded model. The model lives in the
 * executor across stages, but the connections of a group belong to the mesh of the call that uses
 * it (kept per mesh, see {@link MeshConnections}; a call on other devices, or one that connected
 * anew, has others); so the model is built with this stand-in, and every call binds it to its own
 * communicator's subgroup before using the model ({@link ResidentModel#bind}). Calls on one model
 * never run at the same time (the driver schedules calls on overlapping devices one after the
 * other), so one bound group at a time is enough.
 */
final class BoundCollective implements Collective {
    private final String name;
    private final int rank;
    private final int size;
    private volatile Collective group;

    BoundCollective(String name, int rank, int size) {
        this.name = name;
        this.rank = rank;
        this.size = size;
        this.group = size == 1 ? Collective.single() : null;
    }

    void bind(Collective g) {
        if (g.rank() != rank || g.size() != size) {
            throw new IllegalArgumentException(name + " group: the model was built as rank " + rank + " of " + size
                    + ", the call's group is rank " + g.rank() + " of " + g.size());
        }
        group = g;
    }

    private Collective group() {
        Collective g = group;
        if (g == null) {
            throw new IllegalStateException(name + " group of a resident model used outside a call (not bound)");
        }
        return g;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public void sendFloats(int peer, float[] values, int offset, int length) {
        group().sendFloats(peer, values, offset, length);
    }

    @Override
    public void recvFloats(int peer, float[] into, int offset, int length) {
        group().recvFloats(peer, into, offset, length);
    }

    @Override
    public void allReduceSum(float[] buffer) {
        group().allReduceSum(buffer);
    }

    @Override
    public void broadcast(float[] buffer, int root) {
        group().broadcast(buffer, root);
    }

    // the tensor collectives go to the bound group, whose transport may run them in place

    @Override
    public long chunkBytes() {
        return group().chunkBytes();
    }

    @Override
    public void allReduceSum(Backend backend, Tensor t) {
        group().allReduceSum(backend, t);
    }

    @Override
    public void allReduceSum(Backend backend, List<Tensor> tensors) {
        group().allReduceSum(backend, tensors);
    }

    @Override
    public void broadcast(Backend backend, Tensor t, int root) {
        group().broadcast(backend, t, root);
    }

    @Override
    public void allGather(Backend backend, Tensor part, Tensor gathered) {
        group().allGather(backend, part, gathered);
    }

    @Override
    public void sendTensor(Backend backend, Tensor t, int peer) {
        group().sendTensor(backend, t, peer);
    }

    @Override
    public void recvTensor(Backend backend, Tensor t, int peer) {
        group().recvTensor(backend, t, peer);
    }

    @Override
    public void exchangeMessages(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
        group().exchangeMessages(sends, receives);
    }

    @Override
    public void exchangeTensors(Backend backend, Map<Integer, Tensor> sends, Map<Integer, Tensor> receives) {
        group().exchangeTensors(backend, sends, receives);
    }
}
