package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;

import java.util.List;

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
}
