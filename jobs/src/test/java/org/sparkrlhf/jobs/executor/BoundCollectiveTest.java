package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.FloatMessage;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A resident model's stand-in group hands every tensor operation to the bound group's own method:
 * a transport that runs them in place (NCCL on the GPU's tensors) must be reached, not bypassed by
 * the host-staging defaults that would then call its float operations.
 */
class BoundCollectiveTest {
    /** Rank 0 of 2 that records which of its tensor operations ran, and fails on any float operation. */
    private static final class Recording implements Collective {
        final List<String> calls = new ArrayList<>();

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public int size() {
            return 2;
        }

        @Override
        public void sendFloats(int peer, float[] values, int offset, int length) {
            throw new AssertionError("host-staged send");
        }

        @Override
        public void recvFloats(int peer, float[] into, int offset, int length) {
            throw new AssertionError("host-staged receive");
        }

        @Override
        public void allReduceSum(float[] buffer) {
            throw new AssertionError("host-staged all-reduce");
        }

        @Override
        public void broadcast(float[] buffer, int root) {
            throw new AssertionError("host-staged broadcast");
        }

        @Override
        public void allReduceSum(Backend backend, Tensor t) {
            calls.add("allReduceSum(tensor)");
        }

        @Override
        public void allReduceSum(Backend backend, List<Tensor> tensors) {
            calls.add("allReduceSum(tensors)");
        }

        @Override
        public void broadcast(Backend backend, Tensor t, int root) {
            calls.add("broadcast");
        }

        @Override
        public void allGather(Backend backend, Tensor part, Tensor gathered) {
            calls.add("allGather");
        }

        @Override
        public void sendTensor(Backend backend, Tensor t, int peer) {
            calls.add("sendTensor");
        }

        @Override
        public void recvTensor(Backend backend, Tensor t, int peer) {
            calls.add("recvTensor");
        }

        @Override
        public void exchangeTensors(Backend backend, Map<Integer, Tensor> sends, Map<Integer, Tensor> receives) {
            calls.add("exchangeTensors");
        }

        @Override
        public void exchangeMessages(Map<Integer, FloatMessage> sends, Map<Integer, FloatMessage> receives) {
            calls.add("exchangeMessages");
        }
    }

    @Test
    void everyTensorOperationReachesTheBoundGroupsOwn() {
        Recording group = new Recording();
        BoundCollective bound = new BoundCollective("tensor-parallel", 0, 2);
        bound.bind(group);
        try (CpuBackend backend = new CpuBackend(1)) {
            Tensor t = backend.allocate(DType.F32, 3), all = backend.allocate(DType.F32, 6);
            bound.allReduceSum(backend, t);
            bound.allReduceSum(backend, List.of(t));
            bound.broadcast(backend, t, 1);
            bound.allGather(backend, t, all);
            bound.sendTensor(backend, t, 1);
            bound.recvTensor(backend, t, 1);
            bound.exchangeTensors(backend, Map.of(1, t), Map.of(1, t));
            bound.exchangeMessages(Map.of(), Map.of());
        }
        assertEquals(List.of("allReduceSum(tensor)", "allReduceSum(tensors)", "broadcast", "allGather", "sendTensor",
                "recvTensor", "exchangeTensors", "exchangeMessages"), group.calls);
    }
}
