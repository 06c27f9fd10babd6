package org.sparkrlhf.gpuexec.profile;

import java.util.ArrayList;
import java.util.List;

/**
 * The points the profiler measures, chosen by how the planner queries its table: a layer pass over
 * {@code sequences x context} tokens of sequences {@code context} long (the prompt length for a prefill,
 * prompt + answer for inference and training), a decoding step for a batch of sequences at the middle
 * of the answer. The table looks up the nearest context and interpolates linearly in tokens, scaling
 * proportionally above the largest point, so sequence counts grow by 4 up to the iteration's batch and
 * stop at {@code maxPassTokens} (large passes are compute-bound, hence linear).
 *
 * @param passContexts     sequence lengths of the forward/backward passes
 * @param passSequences    sequence counts of the passes (tokens = sequences x context)
 * @param decodeContext    prompt length of the decoding measurement
 * @param decodeSteps      new tokens generated in the decoding measurement (at least 2)
 * @param decodeBatches    sequences decoded together
 * @param maxPassTokens    the largest pass measured
 */
public record ProfileGrid(List<Integer> passContexts, List<Integer> passSequences, int decodeContext, int decodeSteps,
                          List<Integer> decodeBatches, long maxPassTokens) {
    public ProfileGrid {
        if (passContexts.isEmpty() || passSequences.isEmpty() || decodeBatches.isEmpty() || decodeSteps < 2
                || decodeContext < 1) {
            throw new IllegalArgumentException("a profile grid needs contexts, sequence counts, decode batches and"
                    + " at least 2 decoding steps");
        }
        for (int c : passContexts) {
            if (c < 2) {
                throw new IllegalArgumentException("a pass needs at least 2 tokens per sequence, got context " + c);
            }
        }
        passContexts = List.copyOf(passContexts);
        passSequences = List.copyOf(passSequences);
        decodeBatches = List.copyOf(decodeBatches);
    }

    /** The grid for an iteration of {@code sequences} sequences of {@code promptLen + genLen} tokens. */
    public static ProfileGrid forWorkload(int promptLen, int genLen, long sequences, long maxPassTokens) {
        List<Integer> contexts = new ArrayList<>();
        contexts.add(Math.max(2, promptLen));
        if (genLen > 0) {
            contexts.add(promptLen + genLen);
        }
        List<Integer> counts = powersOfFour(sequences);
        int steps = Math.max(2, Math.min(genLen, 8));
        return new ProfileGrid(contexts, counts, Math.max(1, promptLen), steps, counts, maxPassTokens);
    }

    static List<Integer> powersOfFour(long upTo) {
        List<Integer> r = new ArrayList<>();
        long s = 1;
        while (s < upTo) {
            r.add((int) s);
            s *= 4;
        }
        r.add((int) Math.max(1, upTo));
        return r;
    }
}
