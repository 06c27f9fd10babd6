package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel gradient sync of a tiny random model over two TCP ranks, in buckets of 3 floats
 * (smaller than every tensor), of 1000 floats (larger than every tensor, smaller than the model) and
 * the default (the whole model in one): every rank gets the bits of the whole model packed into one
 * array and all-reduced at once, the way the sync worked before it was bucketed.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GradientAllReduceTest {
    private static final ModelConfig CONFIG = ModelConfig.llama(61, 16, 37, 2, 4, 2, 64);
    private static final CommSettings DEFAULT = CommSettings.of(20_000);

    @Test
    void bucketedSyncGivesThePackedSumBitForBit() {
        List<float[]> reference = TcpRanks.run(2, DEFAULT, c -> sync(c, true));
        assertEquals(reference.get(0).length, reference.get(1).length);
        assertArrayEquals(reference.get(0), reference.get(1), "both replicas hold the same sum");
        long largest = 0;
        try (CpuBackend backend = new CpuBackend(1)) {
            LlamaModel model = LlamaModel.random(backend, CONFIG, DType.F32, 1, 0.02f);
            for (LlamaWeights.Spec s : model.gradients().specs()) {
                largest = Math.max(largest, model.gradients().get(s.name()).numel());
            }
        }
        assertTrue(largest < 1000 && reference.get(0).length > 1000, largest + " / " + reference.get(0).length);
        for (int chunk : new int[]{12, 4000, DEFAULT.chunkBytes()}) {
            List<float[]> got = TcpRanks.run(2, DEFAULT.withChunkBytes(chunk), c -> sync(c, false));
            for (int r = 0; r < 2; r++) {
                assertArrayEquals(reference.get(0), got.get(r), "chunk " + chunk + " bytes, rank " + r);
            }
        }
    }

    /** This rank's random gradients summed over the group: by LlamaModel.allReduceGradients, or packed whole (the reference). */
    private static float[] sync(Communicator c, boolean packedWhole) {
        try (CpuBackend backend = new CpuBackend(1)) {
            LlamaModel model = LlamaModel.random(backend, CONFIG, DType.F32, 1, 0.02f);
            LlamaWeights grads = model.gradients();
            SplittableRandom random = new SplittableRandom(17 + c.rank());
            List<Tensor> tensors = new ArrayList<>();
            int total = 0;
            for (LlamaWeights.Spec s : grads.specs()) {
                Tensor t = grads.get(s.name());
                float[] g = new float[Math.toIntExact(t.numel())];
                for (int i = 0; i < g.length; i++) {
                    g[i] = (float) random.nextGaussian();
                }
                backend.upload(t, g);
                tensors.add(t);
                total += g.length;
            }
            if (packedWhole) {
                float[] flat = new float[total];
                int at = 0;
                for (Tensor t : tensors) {
                    float[] g = backend.download(t);
                    System.arraycopy(g, 0, flat, at, g.length);
                    at += g.length;
                }
                c.allReduceSum(flat);
                return flat;
            }
            model.allReduceGradients(c);
            float[] flat = new float[total];
            int at = 0;
            for (Tensor t : tensors) {
                float[] g = backend.download(t);
                System.arraycopy(g, 0, flat, at, g.length);
                at += g.length;
            }
            return flat;
        }
    }
}
