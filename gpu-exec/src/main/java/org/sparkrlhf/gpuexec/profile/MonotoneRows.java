package org.sparkrlhf.gpuexec.profile;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A pass over more tokens (or a decoding step over more sequences) never takes less time: each
 * series of rows of one op, tp and context, in token order, is replaced by its least-squares
 * non-decreasing fit (pool adjacent violators). On a loaded machine a layer timed as the difference
 * of two models' passes, or the head as what one model spends beyond its layer, can come out far
 * below its neighbours (a load spike in the other pass), and the planner would price the micro-batch
 * size that hits that point as nearly free.
 */
final class MonotoneRows {
    private MonotoneRows() {
    }

    /** The rows with every series made non-decreasing in tokens; order and everything else kept. */
    static List<ProfileRow> fit(List<ProfileRow> rows) {
        Map<String, List<Integer>> series = new LinkedHashMap<>();
        for (int i = 0; i < rows.size(); i++) {
            ProfileRow r = rows.get(i);
            series.computeIfAbsent(r.op() + "|" + r.tp() + "|" + r.context(), k -> new ArrayList<>()).add(i);
        }
        double[] fitted = new double[rows.size()];
        for (List<Integer> idx : series.values()) {
            idx.sort(Comparator.comparingLong(i -> rows.get(i).tokens()));
            double[] y = new double[idx.size()];
            for (int j = 0; j < y.length; j++) {
                y[j] = rows.get(idx.get(j)).seconds();
            }
            double[] f = nonDecreasing(y);
            for (int j = 0; j < y.length; j++) {
                fitted[idx.get(j)] = f[j];
            }
        }
        List<ProfileRow> out = new ArrayList<>(rows.size());
        for (int i = 0; i < rows.size(); i++) {
            ProfileRow r = rows.get(i);
            out.add(new ProfileRow(r.model(), r.gpu(), r.op(), r.tp(), r.tokens(), r.context(), fitted[i]));
        }
        return out;
    }

    /** Pool adjacent violators: the non-decreasing sequence nearest {@code y} in squares. */
    static double[] nonDecreasing(double[] y) {
        int n = y.length;
        double[] mean = new double[n];
        int[] size = new int[n];
        int blocks = 0;
        for (double v : y) {
            mean[blocks] = v;
            size[blocks] = 1;
            blocks++;
            while (blocks > 1 && mean[blocks - 2] > mean[blocks - 1]) {
                int s = size[blocks - 2] + size[blocks - 1];
                mean[blocks - 2] = (mean[blocks - 2] * size[blocks - 2] + mean[blocks - 1] * size[blocks - 1]) / s;
                size[blocks - 2] = s;
                blocks--;
            }
        }
        double[] out = new double[n];
        int at = 0;
        for (int b = 0; b < blocks; b++) {
            for (int k = 0; k < size[b]; k++) {
                out[at++] = mean[b];
            }
        }
        return out;
    }
}
