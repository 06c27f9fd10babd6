package org.sparkrlhf.jobs.calls;

/** What a preference train call reports of a rank's pairs: how many, the fraction ranked right, the mean margin. */
public interface PairFigures {
    int pairs();

    float accuracy();

    float meanMargin();

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
