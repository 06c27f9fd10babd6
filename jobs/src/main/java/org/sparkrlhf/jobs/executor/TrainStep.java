package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.train.AdamW;

/**
 * One optimizer step of a data-parallel replica: zero the gradients, run the caller's forward and
 * backward over this replica's micro-batches, sum the gradients over the data-parallel group
 * ({@code LlamaModel#allReduceGradients}), step the optimizer. Every replica applies the same
 * summed gradient with the same optimizer state, so the replicas stay identical.
 */
public final class TrainStep {
    /** Runs forward and backward over this copy's slice (a whole replica or a shard); returns its part of the loss. */
    @FunctionalInterface
    public interface ReplicaBackward {
        double run(ResidentModel replica);
    }

    /** The step's loss (summed over the group), and the optimizer's report. */
    public record Result(double loss, AdamW.StepInfo step) {
    }

    private TrainStep() {
    }

    /**
     * One optimizer step of any copy (a whole replica, or a tensor / pipeline shard bound to its
     * call): zero, forward and backward, sum the gradients over {@code dataGroup} (the ranks holding
     * the same shard in the other replicas), step. The loss is summed over the data group only: the
     * ranks of one replica all compute its whole loss.
     */
    public static Result step(ResidentModel replica, Communicator dataGroup, ReplicaBackward backward) {
        replica.zeroGradients();
        double lossPart = backward.run(replica);
        replica.releaseActivations();
        replica.allReduceGradients(dataGroup);
        float[] loss = {(float) lossPart};
        dataGroup.allReduceSum(loss);
        AdamW.StepInfo info = replica.step();
        return new Result(loss[0], info);
    }
}
