package org.sparkrlhf.jobs.algorithms;

import org.sparkrlhf.jobs.calls.PreferenceEvalCall;
import org.sparkrlhf.jobs.graph.RowSplit;
import org.sparkrlhf.jobs.graph.RunContext;
import org.sparkrlhf.jobs.graph.Sequences;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.train.AlgorithmSpec;
import org.sparkrlhf.jobs.train.PreferenceData;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The held-out evaluation of the preference algorithms, per group and overall: each held-out pair's
 * loss and whether its margin is positive (the implicit reward beta * h of chosen over rejected for
 * DPO / IPO, with the reference's log-probs computed once; the reward model's score difference for
 * RW), written as {@code eval/loss/<group>}, {@code eval/accuracy/<group>}, {@code eval/loss},
 * {@code eval/accuracy}, {@code eval/worst_group_loss} (the largest group loss) and
 * {@code eval/worst_group_accuracy} (the smallest group accuracy). The losses are unweighted (the
 * plain DPO / IPO / Bradley-Terry loss), so robust and plain runs compare on the same measure.
 */
public final class PreferenceEvaluation implements AlgorithmSpec.Evaluation {
    private final PreferenceData data;
    private final String role;
    private final String placementCall;
    private final PreferenceLosses.Kind kind;
    private final double beta;
    private float[][] reference;

    /** DPO / IPO: the actor's log-probs on actor_train's placement against the reference's on ref_inf's. */
    public static PreferenceEvaluation policy(PreferenceData data, PreferenceLosses.Kind kind, double beta) {
        return new PreferenceEvaluation(data, "actor", "actor_train", kind, beta);
    }

    /** RW: the reward model's scores on reward_train's placement. */
    public static PreferenceEvaluation rewardModel(PreferenceData data) {
        return new PreferenceEvaluation(data, "reward", "reward_train", null, 0);
    }

    private PreferenceEvaluation(PreferenceData data, String role, String placementCall, PreferenceLosses.Kind kind,
                                 double beta) {
        this.data = data;
        this.role = role;
        this.placementCall = placementCall;
        this.kind = kind;
        this.beta = beta;
    }

    @Override
    public Result evaluate(RunContext run, int iteration) {
        int n = data.heldOut().size();
        float[][] mine = forward(run, role, run.placement(placementCall), kind == null ? PreferenceEvalCall.Output.SCORES : PreferenceEvalCall.Output.LOGPROBS,
                iteration);
        float[] losses = new float[n];
        float[] margins = new float[n];
        if (kind == null) {
            for (int i = 0; i < n; i++) {
                margins[i] = mine[0][i] - mine[1][i];
                losses[i] = (float) BradleyTerry.negLogSigmoid(margins[i]);
            }
        } else {
            if (reference == null) {
                reference = forward(run, "ref", run.placement("ref_inf"), PreferenceEvalCall.Output.LOGPROBS, iteration);
            }
            PreferenceLosses.Result r = PreferenceLosses.compute(kind, mine[0], mine[1], reference[0], reference[1], beta,
                    null, Math.max(1, n));
            System.arraycopy(r.pairLosses(), 0, losses, 0, n);
            System.arraycopy(r.margins(), 0, margins, 0, n);
        }
        return summarise(data.groups(), PreferenceData.groupsOf(data.heldOut()), losses, margins);
    }

    /** Per group and overall mean loss and accuracy (margin > 0), and the worst group's. */
    static Result summarise(List<String> groups, int[] pairGroups, float[] losses, float[] margins) {
        int k = groups.size();
        double[] loss = new double[k];
        double[] correct = new double[k];
        int[] count = new int[k];
        for (int i = 0; i < losses.length; i++) {
            int g = pairGroups[i];
            loss[g] += losses[i];
            correct[g] += margins[i] > 0 ? 1 : 0;
            count[g]++;
        }
        Map<String, Double> figures = new LinkedHashMap<>();
        double worstLoss = Double.NEGATIVE_INFINITY;
        double worstAccuracy = Double.POSITIVE_INFINITY;
        double allLoss = 0;
        double allCorrect = 0;
        for (int g = 0; g < k; g++) {
            if (count[g] == 0) {
                continue;
            }
            double l = loss[g] / count[g];
            double a = correct[g] / count[g];
            figures.put("eval/loss/" + groups.get(g), l);
            figures.put("eval/accuracy/" + groups.get(g), a);
            worstLoss = Math.max(worstLoss, l);
            worstAccuracy = Math.min(worstAccuracy, a);
            allLoss += loss[g];
            allCorrect += correct[g];
        }
        int n = losses.length;
        figures.put("eval/loss", allLoss / n);
        figures.put("eval/accuracy", allCorrect / n);
        figures.put("eval/worst_group_loss", worstLoss);
        figures.put("eval/worst_group_accuracy", worstAccuracy);
        return new Result(figures, String.format("eval loss %.4f acc %.3f | worst group loss %.4f acc %.3f",
                allLoss / n, allCorrect / n, worstLoss, worstAccuracy));
    }

    /** Per held-out pair, the chosen [0] and rejected [1] answers' summed log-probs or scores from {@code role} on {@code at}. */
    private float[][] forward(RunContext run, String who, Placement at, PreferenceEvalCall.Output output, int iteration) {
        Sequences rows = PreferenceData.rows(data.heldOut());
        int dp = at.dp();
        int total = rows.size();
        List<PreferenceEvalCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = RowSplit.from(total, 2, dp, r);
            int to = RowSplit.from(total, 2, dp, r + 1);
            slices.add(new PreferenceEvalCall.Slice(who, run.models().source(who), run.models().version(who), dp,
                    run.models().model(who).optimizer(), run.config().seed(), output,
                    Arrays.copyOfRange(rows.prompts(), from, to), Arrays.copyOfRange(rows.responses(), from, to),
                    run.special().pad()));
        }
        run.models().prepare(who, at, run.models().model(who).trained());
        List<PreferenceEvalCall.Result> results = at.perDataRank(run.runner().run("eval " + who + " iteration " + iteration
                + " (" + at.layout() + ")", at, at.perRank(slices), new PreferenceEvalCall()));
        run.models().holds(who, at);
        float[][] out = new float[2][total / 2];
        int k = 0;
        for (PreferenceEvalCall.Result r : results) {
            for (int i = 0; i < r.chosen().length; i++, k++) {
                out[0][k] = r.chosen()[i];
                out[1][k] = r.rejected()[i];
            }
        }
        return out;
    }
}
