package org.sparkrlhf.jobs.algorithms;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The adversarial group weights of group-robust preference optimisation, GR-DPO and GR-IPO (Ramesh
 * et al. 2024, "Group Robust Preference Optimization in Reward-free RLHF", arXiv 2405.20304). The
 * policy minimises the worst group's loss, min_pi max_{alpha in simplex} sum_g alpha_g L_g(pi), by
 * alternating (the paper's Algorithm 1) a mirror-ascent (exponentiated-gradient) step on the
 * weights and a gradient step on the policy for the alpha-weighted loss:
 * <pre>
 *   alpha_g &lt;- alpha_g * exp(stepSize * chi * L_g),  then alpha &lt;- alpha / sum(alpha)
 *   objective = sum_g ((1 - chi) / K + chi * alpha_g) * L_g     (with the updated alpha)
 * </pre>
 * starting from the uniform alpha_g = 1/K. L_g estimates group g's mean per-pair loss (DPO or IPO,
 * {@link PreferenceLosses}) on the batch, at the policy before the step, in one of two ways:
 * <ul>
 *   <li>{@link Scaling#DATASET} (Algorithm 1, where a pair of group g drawn from the whole data
 *       counts N / N_g times, N_g the group's and N all pairs in the training set):
 *       L_g = (1 / B) * sum over the batch's B pairs i in g of (N / N_g) * l_i, an unbiased estimate
 *       of the group's mean loss when batches are drawn uniformly from the data. This is the
 *       authors' LLM code (src/trainers/grouptrainer.py, {@code compute_group_metric} with
 *       {@code divide_by_totalcount: True}, their default) but for the 1/B, which their code leaves
 *       out: their {@code step_size} is this class's stepSize / B, and their loss B times this one;</li>
 *   <li>{@link Scaling#BATCH}: L_g = the mean of l_i over the batch's pairs of g (0 for a group
 *       not in the batch), as the authors' synthetic experiments do
 *       (algos/linear_bandit/group_robust_dpo_vectorised_gradfix.py of
 *       github.com/rsshyam/Group-robust-preference-optimization-bandits) and their LLM code with
 *       {@code divide_by_totalcount: False}.</li>
 * </ul>
 * Both estimate the same group mean, so one stepSize means the same under either. chi in [0, 1]
 * trades the worst group against the average (the paper's appendix ablation and the synthetic
 * code's {@code chi}); chi = 1, the default, is the pure robust objective. The authors' default step
 * size is 0.01 (config/loss/rdpo.yaml and ripo.yaml of the LLM code; the synthetic scripts' default
 * {@code exp_step_size}).
 * <p>
 * One step, in order: the batch's per-pair losses at the current policy ({@link #groupLosses}),
 * {@link #update}, then {@link #pairWeights} for the policy's gradient step; no gradient flows
 * through alpha. This class takes one step per optimizer step over the whole batch; the authors'
 * LLM code takes one per micro-batch (B there being the micro-batch's size).
 * The weights are part of the run state that a checkpoint saves ({@link #state()}, {@link #restore}).
 */
public final class GroupWeights {
    public static final double DEFAULT_STEP_SIZE = 0.01;

    /** How a group's batch loss is scaled; see the class comment. */
    public enum Scaling {
        DATASET, BATCH;

        public static Scaling of(String name) {
            return switch (name) {
                case "dataset" -> DATASET;
                case "batch" -> BATCH;
                default -> throw new IllegalArgumentException("unknown group loss scaling '" + name + "' (dataset or batch)");
            };
        }
    }

    /** What a checkpoint holds: the group names and their weights alpha, in the same order. */
    public record State(List<String> groups, List<Double> weights) implements Serializable {
        public State {
            groups = List.copyOf(groups);
            weights = List.copyOf(weights);
            if (groups.size() != weights.size()) {
                throw new IllegalArgumentException(groups.size() + " groups and " + weights.size() + " weights");
            }
        }
    }

    private final List<String> groups;
    private final long[] counts;
    private final long total;
    private final double stepSize;
    private final double chi;
    private final Scaling scaling;
    private final double[] alpha;

    /**
     * @param groups     the group names, in the order of the group indices the other methods take
     * @param counts     N_g: each group's number of pairs in the training set (> 0)
     * @param stepSize   the weights' mirror-ascent step size (>= 0)
     * @param chi        the robust-average trade-off in [0, 1] (1: worst group only)
     */
    public GroupWeights(List<String> groups, long[] counts, double stepSize, double chi, Scaling scaling) {
        if (groups.isEmpty() || groups.size() != counts.length) {
            throw new IllegalArgumentException(groups.size() + " groups and " + counts.length + " group sizes");
        }
        if (groups.stream().distinct().count() != groups.size()) {
            throw new IllegalArgumentException("group names repeat: " + groups);
        }
        long sum = 0;
        for (int g = 0; g < counts.length; g++) {
            if (counts[g] <= 0) {
                throw new IllegalArgumentException("group '" + groups.get(g) + "' has " + counts[g] + " pairs");
            }
            sum += counts[g];
        }
        if (!(stepSize >= 0) || !(chi >= 0 && chi <= 1)) {
            throw new IllegalArgumentException("need stepSize >= 0 and chi in [0, 1], got " + stepSize + " and " + chi);
        }
        this.groups = List.copyOf(groups);
        this.counts = counts.clone();
        this.total = sum;
        this.stepSize = stepSize;
        this.chi = chi;
        this.scaling = scaling;
        this.alpha = new double[counts.length];
        Arrays.fill(alpha, 1.0 / counts.length);
    }

    public List<String> groups() {
        return groups;
    }

    /** The index of a group name, as {@code pairGroups} arrays hold it. */
    public int index(String group) {
        int g = groups.indexOf(group);
        if (g < 0) {
            throw new IllegalArgumentException("unknown group '" + group + "' (groups: " + groups + ")");
        }
        return g;
    }

    /** A copy of alpha. */
    public double[] weights() {
        return alpha.clone();
    }

    public State state() {
        List<Double> w = new ArrayList<>(alpha.length);
        for (double a : alpha) {
            w.add(a);
        }
        return new State(groups, w);
    }

    /** Restores alpha from a checkpoint, whose groups must be these, in this order. */
    public void restore(State saved) {
        if (!saved.groups().equals(groups)) {
            throw new IllegalArgumentException("the checkpoint's groups " + saved.groups() + " are not this run's " + groups);
        }
        double sum = 0;
        for (double w : saved.weights()) {
            if (!(w >= 0)) {
                throw new IllegalArgumentException("a saved group weight of " + w);
            }
            sum += w;
        }
        if (Math.abs(sum - 1) > 1e-6) {
            throw new IllegalArgumentException("saved group weights sum to " + sum + ", not 1");
        }
        for (int g = 0; g < alpha.length; g++) {
            alpha[g] = saved.weights().get(g);
        }
    }

    /**
     * L_g of each group from the batch's per-pair (unweighted) losses and each pair's group index;
     * the batch is all {@code pairLosses.length} pairs of the step (gather the micro-batches' first).
     */
    public double[] groupLosses(float[] pairLosses, int[] pairGroups) {
        int b = checkPairs(pairLosses.length, pairGroups);
        double[] sums = new double[alpha.length];
        for (int i = 0; i < b; i++) {
            sums[pairGroups[i]] += pairLosses[i];
        }
        return groupLosses(sums, batchCounts(pairGroups));
    }

    /**
     * L_g of each group from the step's per-group sums of the (unweighted) pair losses and per-group
     * pair counts, over the whole batch: what data-parallel ranks get by summing their own pairs'
     * sums and counts, without gathering the pairs.
     */
    public double[] groupLosses(double[] groupSums, long[] batchCounts) {
        long b = checkBatch(batchCounts);
        if (groupSums.length != alpha.length) {
            throw new IllegalArgumentException(groupSums.length + " group loss sums for " + alpha.length + " groups");
        }
        double[] losses = new double[alpha.length];
        for (int g = 0; g < alpha.length; g++) {
            losses[g] = scaling == Scaling.DATASET
                    ? (double) total / counts[g] * groupSums[g] / b
                    : batchCounts[g] == 0 ? 0.0 : groupSums[g] / batchCounts[g];
        }
        return losses;
    }

    /** Each group's number of pairs among {@code pairGroups} (none or some of the batch's). */
    public long[] batchCounts(int[] pairGroups) {
        checkIndices(pairGroups);
        long[] inBatch = new long[alpha.length];
        for (int g : pairGroups) {
            inBatch[g]++;
        }
        return inBatch;
    }

    /** One mirror-ascent step of alpha on the groups' losses {@link #groupLosses}; returns the new alpha. */
    public double[] update(double[] groupLosses) {
        if (groupLosses.length != alpha.length) {
            throw new IllegalArgumentException(groupLosses.length + " group losses for " + alpha.length + " groups");
        }
        // in log space, less the largest exponent: the same normalised alpha, without overflow
        double[] logs = new double[alpha.length];
        double max = Double.NEGATIVE_INFINITY;
        for (int g = 0; g < alpha.length; g++) {
            logs[g] = Math.log(alpha[g]) + stepSize * chi * groupLosses[g];
            max = Math.max(max, logs[g]);
        }
        double sum = 0;
        for (int g = 0; g < alpha.length; g++) {
            alpha[g] = Math.exp(logs[g] - max);
            sum += alpha[g];
        }
        for (int g = 0; g < alpha.length; g++) {
            alpha[g] /= sum;
        }
        return weights();
    }

    /** Group g's weight in the objective: (1 - chi) / K + chi * alpha_g. */
    public double objectiveWeight(int g) {
        return (1 - chi) / alpha.length + chi * alpha[g];
    }

    /** The robust objective sum_g objectiveWeight(g) * L_g (what the pair weights make the loss, in value). */
    public double objective(double[] groupLosses) {
        double sum = 0;
        for (int g = 0; g < alpha.length; g++) {
            sum += objectiveWeight(g) * groupLosses[g];
        }
        return sum;
    }

    /**
     * Each pair's weight for {@link PreferenceLosses#compute} with denominator B (the batch's pair
     * count), such that sum_i w_i * l_i / B = {@link #objective}: w_i = objectiveWeight(g) * N / N_g
     * under DATASET, objectiveWeight(g) * B / n_g under BATCH (n_g: the group's pairs in the batch).
     * Call it after {@link #update}, on the whole batch's groups; micro-batches take their slices.
     */
    public float[] pairWeights(int[] pairGroups) {
        return pairWeights(pairGroups, batchCounts(pairGroups));
    }

    /**
     * {@link #pairWeights(int[])} of some of the batch's pairs (a data-parallel rank's, a
     * micro-batch's; none on a rank without pairs), given the whole batch's per-group pair counts.
     */
    public float[] pairWeights(int[] pairGroups, long[] batchCounts) {
        long b = checkBatch(batchCounts);
        checkIndices(pairGroups);
        float[] w = new float[pairGroups.length];
        for (int i = 0; i < w.length; i++) {
            int g = pairGroups[i];
            if (batchCounts[g] == 0) {
                throw new IllegalArgumentException("a pair of group '" + groups.get(g) + "', which has no pairs in the batch");
            }
            double scale = scaling == Scaling.DATASET ? (double) total / counts[g] : (double) b / batchCounts[g];
            w[i] = (float) (objectiveWeight(g) * scale);
        }
        return w;
    }

    private long checkBatch(long[] batchCounts) {
        if (batchCounts.length != alpha.length) {
            throw new IllegalArgumentException(batchCounts.length + " group counts for " + alpha.length + " groups");
        }
        long b = 0;
        for (long c : batchCounts) {
            if (c < 0) {
                throw new IllegalArgumentException("a group count of " + c);
            }
            b += c;
        }
        if (b == 0) {
            throw new IllegalArgumentException("a batch of no pairs");
        }
        return b;
    }

    private int checkPairs(int pairs, int[] pairGroups) {
        if (pairs == 0 || pairGroups.length != pairs) {
            throw new IllegalArgumentException(pairs + " pair losses and " + pairGroups.length + " group indices");
        }
        checkIndices(pairGroups);
        return pairs;
    }

    private void checkIndices(int[] pairGroups) {
        for (int g : pairGroups) {
            if (g < 0 || g >= alpha.length) {
                throw new IllegalArgumentException("group index " + g + " outside [0, " + alpha.length + ")");
            }
        }
    }
}
