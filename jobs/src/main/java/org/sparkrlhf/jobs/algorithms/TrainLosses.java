package org.sparkrlhf.jobs.algorithms;

import org.sparkrlhf.jobs.calls.CriticTrainCall;
import org.sparkrlhf.jobs.calls.GrpoTrainCall;
import org.sparkrlhf.jobs.calls.PpoActorTrainCall;
import org.sparkrlhf.jobs.calls.SftTrainCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.graph.TrainLoss;

import java.util.Arrays;

/**
 * The named losses of the train executor function that the algorithms' specs bind their train calls
 * to. Each reads the call's input keys by name: {@code packed_input_ids} (the rows),
 * {@code packed_logprobs} (the behaviour policy's), {@code packed_ref_logprobs}, {@code advantages},
 * {@code values}, {@code returns}.
 */
public final class TrainLosses {
    private TrainLosses() {
    }

    /** SFT: cross-entropy on the answer tokens (and eos), over the batch's answer token count. */
    public static TrainLoss<SftTrainCall.Slice, SftTrainCall.Result> sft() {
        return new TrainLoss<>("sft", (run, call, keys, dp, r, rows) -> {
            Sequences s = rows(keys);
            int[][] ids = new int[rows.size()][];
            int[] promptTokens = new int[rows.size()];
            for (int i = 0; i < rows.size(); i++) {
                int[] p = s.prompts()[rows.index()[i]];
                int[] a = s.responses()[rows.index()[i]];
                ids[i] = Arrays.copyOf(p, p.length + a.length);
                System.arraycopy(a, 0, ids[i], p.length, a.length);
                promptTokens[i] = p.length;
            }
            String role = call.role();
            return new SftTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp, ids,
                    promptTokens, run.special().pad(), (int) s.responseTokens(), run.models().model(role).optimizer());
        }, new SftTrainCall());
    }

    /**
     * GRPO's loss: the clipped surrogate on each sample's advantage ({@code advantages}: a
     * {@code float[]}, one per row) plus klCoef times the k3 KL to the reference, {@code epochs} x
     * {@code miniBatches} steps.
     */
    public static TrainLoss<GrpoTrainCall.Slice, GrpoTrainCall.Result> grpo(double clipRatio, double klCoef, int epochs,
                                                                            int miniBatches) {
        return new TrainLoss<>("grpo", (run, call, keys, dp, r, rows) -> {
            Sequences s = rows(keys);
            float[][] old = keys.get("packed_logprobs", float[][].class);
            float[][] ref = keys.get("packed_ref_logprobs", float[][].class);
            float[] advantages = keys.get("advantages", float[].class);
            String role = call.role();
            return new GrpoTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    run.models().model(role).optimizer(), rows.of(s.prompts()), rows.of(s.responses()), rows.of(old),
                    rows.of(ref), rows.of(advantages), clipRatio, klCoef, epochs, rows.miniBatches(), run.special().pad());
        }, new GrpoTrainCall());
    }

    /** PPO's clipped surrogate on per-token advantages ({@code float[][]}), {@code epochs} x {@code miniBatches} steps. */
    public static TrainLoss<PpoActorTrainCall.Slice, PpoActorTrainCall.Result> ppoPolicy(RunConfig.PpoConfig ppo) {
        return new TrainLoss<>("ppo", (run, call, keys, dp, r, rows) -> {
            Sequences s = rows(keys);
            float[][] old = keys.get("packed_logprobs", float[][].class);
            float[][] advantages = keys.get("advantages", float[][].class);
            String role = call.role();
            return new PpoActorTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    run.models().model(role).optimizer(), rows.of(s.prompts()), rows.of(s.responses()), rows.of(old),
                    rows.of(advantages), ppo.clipRatio(), ppo.epochs(), rows.miniBatches(), run.special().pad());
        }, new PpoActorTrainCall());
    }

    /** PPO's clipped value loss of the critic against {@code returns}, {@code epochs} x {@code miniBatches} steps. */
    public static TrainLoss<CriticTrainCall.Slice, CriticTrainCall.Result> value(RunConfig.PpoConfig ppo, long headSeed) {
        return new TrainLoss<>("value", (run, call, keys, dp, r, rows) -> {
            Sequences s = rows(keys);
            float[][] values = keys.get("values", float[][].class);
            float[][] returns = keys.get("returns", float[][].class);
            String role = call.role();
            return new CriticTrainCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    run.models().model(role).optimizer(), headSeed, rows.of(s.prompts()), rows.of(s.responses()),
                    rows.of(values), rows.of(returns), ppo.valueClip(), ppo.valueCoef(), ppo.epochs(), rows.miniBatches(),
                    run.special().pad());
        }, new CriticTrainCall());
    }

    private static Sequences rows(Keys keys) {
        return keys.get("packed_input_ids", Sequences.class);
    }
}
