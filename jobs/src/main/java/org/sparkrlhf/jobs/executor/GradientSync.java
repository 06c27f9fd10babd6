package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Data-parallel gradient synchronisation: every replica's gradients, in the model's parameter order
 * (so all replicas agree on the layout), are summed over the data-parallel group with the group's
 * tensor all-reduce ({@link Communicator#allReduceSum(Backend, List)}): in place over NCCL on GPUs,
 * through host memory in buckets of at most the transport's chunk elsewhere; never one buffer of
 * the whole model. Each replica's loss is already scaled by the whole batch's denominator, so the
 * sum is the whole batch's gradient.
 */
public final class GradientSync {
    private GradientSync() {
    }

    public static void allReduce(LlamaModel model, Communicator dataParallel) {
        LlamaWeights grads = model.gradients();
        List<Tensor> tensors = new ArrayList<>();
        for (LlamaWeights.Spec s : grads.specs()) {
            tensors.add(grads.get(s.name()));
        }
        allReduce(model.backend(), tensors, dataParallel);
    }

    /**
     * The same for any copy's gradients by name (a whole model's or a tensor / pipeline shard's):
     * the data-parallel group's ranks hold the same shard, so their maps have the same names,
     * order and shapes.
     */
    public static void allReduce(Backend backend, Map<String, Tensor> grads, Communicator dataParallel) {
        allReduce(backend, new ArrayList<>(grads.values()), dataParallel);
    }

    private static void allReduce(Backend backend, List<Tensor> grads, Communicator dataParallel) {
        if (dataParallel.size() == 1) {
            return;
        }
        dataParallel.allReduceSum(backend, grads);
    }
}
