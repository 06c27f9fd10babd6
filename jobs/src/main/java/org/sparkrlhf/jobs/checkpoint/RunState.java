package org.sparkrlhf.jobs.checkpoint;

import java.util.Map;

/**
 * What a run needs besides the weights and optimizer states to continue exactly where a
 * checkpoint was taken: the run's name and seed (a resumed config must have the same), the
 * iterations done, the position in the prompt stream (the dataset's size, and the epoch and rows
 * consumed in it, under the data order of {@code seed}), the sampling RNG's counter (the number
 * of sampling seeds drawn: the sampling seed of an iteration is a function of the run's seed and
 * this counter, so the stream continues where it stopped), the KL controller's coefficient,
 * each trained model's parameter version (optimizer steps applied), and the group weights of a
 * group-robust run (group name to weight; empty otherwise, and in checkpoints written before they
 * were kept).
 */
public record RunState(String run, int iteration, long seed, int dataSize, long dataEpoch, long dataOffset,
                       long rngCounter, double klCoef, Map<String, Long> modelVersions, Map<String, Double> groupWeights) {
    public RunState {
        modelVersions = Map.copyOf(modelVersions);
        groupWeights = groupWeights == null ? Map.of() : Map.copyOf(groupWeights);
        if (run == null || run.isBlank()) {
            throw new IllegalArgumentException("run state without a run name");
        }
        if (iteration < 0 || dataSize <= 0 || dataEpoch < 0 || dataOffset < 0 || dataOffset >= dataSize
                || rngCounter < 0) {
            throw new IllegalArgumentException("bad position in run state: iteration " + iteration + ", data size "
                    + dataSize + ", epoch " + dataEpoch + ", offset " + dataOffset + ", rng counter " + rngCounter);
        }
    }

    /** The parameter version of a trained model this state records; an error naming the roles it has. */
    public long version(String role) {
        Long v = modelVersions.get(role);
        if (v == null) {
            throw new IllegalArgumentException("the checkpoint of run " + run + " at iteration " + iteration
                    + " holds no model '" + role + "' (it holds " + modelVersions.keySet() + ")");
        }
        return v;
    }
}
