package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.profile.Lockstep;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.util.Arrays;
import java.util.List;

/**
 * What a training step costs beyond its passes (the table's rows) and its gradients' all-reduce
 * (the measured link): the loss's all-reduce over the data-parallel group and the AdamW update,
 * as {@code TrainStep} runs them after the gradients are summed, on the profiled model with all of
 * its parameters, the profiling stage's devices side by side as a call's data-parallel ranks are.
 * Priced by the planner per parameter a rank updates. Traced in the embedded PPO example (batch 64,
 * 150K-parameter model, two CPU slots): 0.9 ms for the loss's all-reduce and 1.5 ms for AdamW per
 * step, which the roofline priced as a 0.3 ms pass over the optimizer's state.
 */
final class OptimizerStepProfiler {
    private OptimizerStepProfiler() {
    }

    /** Seconds per parameter: the median of {@code repeats} timed steps (after one not timed) over the parameter count. */
    static double measure(Backend backend, ModelConfig config, Communicator group, Lockstep lockstep, int repeats) {
        LlamaModel model = LlamaModel.random(backend, config, DType.F32, 7, 0.02f);
        try (ResidentModel m = new ResidentModel(model, AdamW.forModel(model, AdamW.Hyper.defaults(1e-5f)), 0)) {
            List<Batch> batch = MicroBatchProfiler.batches(config, 1, Math.min(4, config.maxPositions()), 1);
            double[] s = new double[repeats + 1];
            for (int i = 0; i <= repeats; i++) {
                // the step finds its gradients as a call leaves them: accumulated by a backward, then summed
                m.zeroGradients();
                if (config.head() == ModelConfig.Head.CAUSAL_LM) {
                    m.forwardBackward(batch, (j, stats) -> {
                        float[] d = new float[stats.logprobs().length];
                        Arrays.fill(d, -1f / Math.max(1, d.length));
                        return d;
                    });
                } else {
                    float[] v = model.values(batch.get(0));
                    float[] d = new float[v.length];
                    Arrays.fill(d, 1f / Math.max(1, d.length));
                    model.backwardValues(d);
                }
                m.releaseActivations();
                m.allReduceGradients(group);
                backend.synchronize();
                lockstep.barrier();
                long t0 = System.nanoTime();
                float[] loss = {1f};
                group.allReduceSum(loss);
                m.step();
                backend.synchronize();
                s[i] = (System.nanoTime() - t0) / 1e9;
            }
            double[] timed = Arrays.copyOfRange(s, 1, s.length);
            Arrays.sort(timed);
            return Math.max(1e-12, timed[timed.length / 2]) / model.parameters().count();
        }
    }
}
