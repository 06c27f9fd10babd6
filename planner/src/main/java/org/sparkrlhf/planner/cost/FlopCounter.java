package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * Analytic FLOP counts of an RLHF iteration, with the convention ReaL uses for its throughput figures
 * (ReaLHF, realhf/base/monitor.py: {@code caculuate_llama_forward_flops}, {@code calculate_llama_gen_flops},
 * {@code calculate_llama_train_flops} with factor 4), so that PFLOP/s figures compare one to one:
 * <ul>
 *   <li>forward over sequences of length {@code s}: {@code 2 L (4 T h^2 + 2 sum(s^2) h + 3 T h f) + 4 T V h}
 *   for {@code T} tokens (attention projections counted as {@code 4h^2} whatever the key/value heads);</li>
 *   <li>training: 4 forward passes (forward, backward, recomputation);</li>
 *   <li>generation: a forward over the prompts, then per new token
 *   {@code 2 L (4 B h^2 + 2 (sum(prefix) + B) h + 3 B h f) + 4 B V h}.</li>
 * </ul>
 * PPO's iteration: generation of the actor, inference of critic, reference and reward, training of
 * actor and critic, all over the same batch (the vocabulary term is counted for value heads too).
 */
public final class FlopCounter {
    private FlopCounter() {
    }

    public static double forward(ModelSpec m, double sequences, int seqLen) {
        double h = m.hidden();
        double t = sequences * seqLen;
        double attn = sequences * (double) seqLen * seqLen * h;
        return 2.0 * m.layers() * (4 * t * h * h + 2 * attn + 3 * t * h * m.intermediate()) + 4 * t * m.vocab() * h;
    }

    public static double train(ModelSpec m, double sequences, int seqLen) {
        return 4 * forward(m, sequences, seqLen);
    }

    public static double generate(ModelSpec m, double sequences, int promptLen, int genLen) {
        double h = m.hidden();
        double f = forward(m, sequences, promptLen);
        for (int i = 0; i < genLen; i++) {
            double prefix = sequences * (promptLen + i);
            f += 2.0 * m.layers() * (4 * sequences * h * h + 2 * (prefix + sequences) * h
                    + 3 * sequences * h * m.intermediate()) + 4 * sequences * m.vocab() * h;
        }
        return f;
    }

    /** FLOPs of one PPO iteration as ReaL counts them. */
    public static double ppoIteration(ModelSpec actor, ModelSpec critic, ModelSpec ref, ModelSpec reward, double sequences,
                                      int promptLen, int genLen) {
        int s = promptLen + genLen;
        return generate(actor, sequences, promptLen, genLen)
                + forward(critic, sequences, s) + forward(ref, sequences, s) + forward(reward, sequences, s)
                + train(actor, sequences, s) + train(critic, sequences, s);
    }
}
