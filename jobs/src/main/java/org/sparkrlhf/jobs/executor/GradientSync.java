package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;

import java.util.List;
import java.util.Map;

/**
 * Data-parallel gradient synchronisation on CPU executors: every replica's gradients are packed
 * into one buffer (in the model's parameter order, so all replicas agree on the layout), summed
 * over the data-parallel group, and unpacked. Each replica's loss is already scaled by the whole
 * batch's denominator, so the sum is the whole batch's gradient.
 */
public final class GradientSync {
    private GradientSync() {
    }

    public static void allReduce(LlamaModel model, Communicator dataParallel) {
        if (dataParallel.size() == 1) {
            return;
        }
        Backend backend = model.backend();
        LlamaWeights grads = model.gradients();
        List<LlamaWeights.Spec> specs = grads.specs();
        long total = 0;
        for (LlamaWeights.Spec s : specs) {
            total += grads.get(s.name()).numel();
        }
        float[] flat = new float[Math.toIntExact(total)];
        int offset = 0;
        for (LlamaWeights.Spec s : specs) {
            float[] g = backend.download(grads.get(s.name()));
            System.arraycopy(g, 0, flat, offset, g.length);
            offset += g.length;
        }
        dataParallel.allReduceSum(flat);
        offset = 0;
        for (LlamaWeights.Spec s : specs) {
            Tensor t = grads.get(s.name());
            int n = Math.toIntExact(t.numel());
            float[] g = new float[n];
            System.arraycopy(flat, offset, g, 0, n);
            backend.upload(t, g);
            offset += n;
        }
    }

    /**
     * The same for any copy's gradients by name (a whole model's or a tensor / pipeline shard's):
     * the data-parallel group's ranks hold the same shard, so their maps have the same names,
     * order and shapes.
     */
    public static void allReduce(Backend backend, Map<String, Tensor> grads, Communicator dataParallel) {
        if (dataParallel.size() == 1) {
            return;
        }
        long total = 0;
        for (Tensor t : grads.values()) {
            total += t.numel();
        }
        float[] flat = new float[Math.toIntExact(total)];
        int offset = 0;
        for (Tensor t : grads.values()) {
            float[] g = backend.download(t);
            System.arraycopy(g, 0, flat, offset, g.length);
            offset += g.length;
        }
        dataParallel.allReduceSum(flat);
        offset = 0;
        for (Tensor t : grads.values()) {
            int n = Math.toIntExact(t.numel());
            float[] g = new float[n];
            System.arraycopy(flat, offset, g, 0, n);
            backend.upload(t, g);
            offset += n;
        }
    }
}
