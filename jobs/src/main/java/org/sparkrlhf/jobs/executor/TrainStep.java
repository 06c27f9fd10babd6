package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.train.AdamW;

/**
 * One optimizer step of a data-parallel replica: zero the gradients, run the caller's forward and
 * backward over this replica's micro-batches, sum the gradients over the data-parallel group,
 * step the optimizer. Every replica applies the same summed gradient with the same optimizer
 * state, so the replicas stay identical.
 */
public final class TrainStep {
    /** Runs forward and backward over this replica's slice; returns the slice's part of the loss. */
    @FunctionalInterface
    public interface Backward {
        double run(LlamaModel model);
    }

    /** The step's loss (summed over the group), and the optimizer's report. */
    public record Result(double loss, AdamW.StepInfo step) {
    }

    private TrainStep() {
    }

    public static Result run(ResidentModel replica, Communicator dataParallel, Backward backward) {
        LlamaModel model = replica.model();
        model.zeroGradients();
        double lossPart = backward.run(model);
        model.releaseActivations();
        GradientSync.allReduce(model, dataParallel);
        float[] loss = {(float) lossPart};
        dataParallel.allReduceSum(loss);
        AdamW.StepInfo info = replica.optimizer().step();
        replica.advance();
        return new Result(loss[0], info);
    }
}
