package org.sparkrlhf.jobs.calls;

/** What a preference train call reports of a rank's pairs: how many, the fraction ranked right, the mean margin. */
public interface PairFigures {
    int pairs();

    float accuracy();

    float meanMargin();

    /** The fraction of {@code margins} above 0 [0] and their mean [1] (0 and 0 without pairs). */
    static float[] ofMargins(float[] margins) {
        int correct = 0;
        double sum = 0;
        for (float m : margins) {
            sum += m;
            if (m > 0) {
                correct++;
            }
        }
        int n = margins.length;
        return n == 0 ? new float[2] : new float[]{(float) correct / n, (float) (sum / n)};
    }

    /** The accuracy [0] and mean margin [1] over all ranks' pairs. */
    static double[] overRanks(java.util.List<? extends PairFigures> ranks) {
        double correct = 0;
        double margin = 0;
        int pairs = 0;
        for (PairFigures r : ranks) {
            correct += (double) r.accuracy() * r.pairs();
            margin += (double) r.meanMargin() * r.pairs();
            pairs += r.pairs();
        }
        return new double[]{correct / pairs, margin / pairs};
    }
}
