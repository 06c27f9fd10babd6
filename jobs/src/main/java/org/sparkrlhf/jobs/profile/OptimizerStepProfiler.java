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

    /** Steps are warmed up for at least this long (and {@link #WARM_UP_STEPS}) before any is timed ... */
    static final double WARM_UP_SECONDS = 0.25;
    static final int WARM_UP_STEPS = 3;
    /** ... and steps faster than this are timed {@link #FAST_REPEATS} times (the median). */
    static final double FAST_SECONDS = 0.02;
    static final int FAST_REPEATS = 15;

    /**
     * Seconds per parameter: the median of the timed steps over the parameter count. Timed after one
     * untimed step, the embedded PPO example's 150K-parameter model came out at 1.6-1.8e-8 s per
     * parameter (2.7 ms a step) against 0.7-1.7 ms in the run's steps (the loss's all-reduce and
     * AdamW, traced): the JIT had not compiled AdamW's loops yet, and five samples of a millisecond
     * moved with every scheduling hiccup.
     */
    static double measure(Backend backend, ModelConfig config, Communicator group, Lockstep lockstep, int repeats) {
        LlamaModel model = LlamaModel.random(backend, config, DType.F32, 7, 0.02f);
        try (ResidentModel m = new ResidentModel(model, AdamW.forModel(model, AdamW.Hyper.defaults(1e-5f)), 0)) {
            List<Batch> batch = MicroBatchProfiler.batches(config, 1, Math.min(4, config.maxPositions()), 1);
            // the devices run as many steps as each other: every step all-reduces the loss
            long warm = System.nanoTime();
            double once = step(m, model, config, batch, group, backend, lockstep);
            for (int i = 1; lockstep.max(i < WARM_UP_STEPS || (System.nanoTime() - warm) / 1e9 < WARM_UP_SECONDS ? 1 : 0) == 1;
                 i++) {
                once = step(m, model, config, batch, group, backend, lockstep);
            }
            int timed = lockstep.max(once < FAST_SECONDS ? Math.max(repeats, FAST_REPEATS) : repeats);
            double[] s = new double[timed];
            for (int i = 0; i < timed; i++) {
                s[i] = step(m, model, config, batch, group, backend, lockstep);
            }
            Arrays.sort(s);
            return Math.max(1e-12, s[timed / 2]) / model.parameters().count();
        }
    }

    /** One step as a call's ranks run it; returns the seconds of its loss all-reduce and AdamW update. */
    private static double step(ResidentModel m, LlamaModel model, ModelConfig config, List<Batch> batch, Communicator group,
                               Backend backend, Lockstep lockstep) {
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
        return (System.nanoTime() - t0) / 1e9;
    }
}
