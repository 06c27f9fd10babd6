package org.sparkrlhf.planner.bench;

import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.sim.Simulator;

import java.util.List;

/**
 * Fits {@link CostConstants} to ReaL's published measurements ({@link PublishedReal}), in two stages:
 * <ol>
 *   <li>the GEMM efficiency and the fixed overheads, to the heuristic plan's iteration times: coordinate
 *   descent on a log grid minimising the mean squared log ratio between the planner's estimate of its
 *   symmetric plan and the published time (published FLOPs / published PFLOP/s);</li>
 *   <li>the share of the decoding overhead that tensor parallelism causes (the heuristic decodes with
 *   tp 8 only, so stage 1 cannot see it), to the iteration times of ReaL's searched plans: a grid over
 *   the share, each value scored by the planner's own searched plans (a fixed number of search steps).</li>
 * </ol>
 * Prints the fitted constants and the per-setup fit. {@link CostConstants#calibrated()} holds the values
 * of a run of this program. Usage: {@code EstimatorCalibration [heuristic | split [steps [share,share,...]]]}.
 */
public final class EstimatorCalibration {
    private EstimatorCalibration() {
    }

    /** Estimated iteration seconds of the symmetric plan, or +inf when it does not fit. */
    static double symmetricSeconds(PpoSetup s, CostConstants k) {
        PlanningProblem p = s.problem(k);
        Simulator sim = new Simulator(p);
        Candidate[] a = Baselines.symmetric(p, sim);
        return a == null ? Double.POSITIVE_INFINITY : sim.iterationSeconds(a);
    }

    static double loss(List<PublishedReal.Point> pts, CostConstants k) {
        double sum = 0;
        for (PublishedReal.Point pt : pts) {
            PpoSetup s = PpoSetup.of(pt);
            double published = s.flops() / 1e15 / pt.heuristicPflops();
            double est = symmetricSeconds(s, k);
            if (!Double.isFinite(est)) {
                return Double.POSITIVE_INFINITY;
            }
            double d = Math.log(est / published);
            sum += d * d;
        }
        return sum / pts.size();
    }

    public static void main(String[] args) {
        String stage = args.length > 0 ? args[0] : "heuristic";
        if (stage.equals("split")) {
            double[] shares = args.length > 2
                    ? java.util.Arrays.stream(args[2].split(",")).mapToDouble(Double::parseDouble).toArray()
                    : new double[]{0.0, 0.2, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.95};
            fitSplit(args.length > 1 ? Long.parseLong(args[1]) : 20000, shares);
            return;
        }
        List<PublishedReal.Point> pts = PublishedReal.points();
        CostConstants k = CostConstants.calibrated();
        double[] v = k.fitted();
        double[] lo = {0.05, 0, 0, 0, 0, 0};
        double[] hi = {0.9, 5e-3, 5e-3, 5e-3, 0.2, 10};
        double best = loss(pts, k);
        System.out.printf("start: rms log error %.4f%n", Math.sqrt(best));
        double[] factors = {4, 2, 1.4, 1.15, 1.05};
        for (double f : factors) {
            boolean improved = true;
            while (improved) {
                improved = false;
                for (int i = 0; i < v.length; i++) {
                    for (double mult : new double[]{f, 1 / f}) {
                        double[] t = v.clone();
                        t[i] = v[i] == 0 ? (mult > 1 ? hi[i] / 1000 : 0) : v[i] * mult;
                        if (t[i] < lo[i] || t[i] > hi[i]) {
                            continue;
                        }
                        double l = loss(pts, k.withFitted(t));
                        if (l < best - 1e-9) {
                            best = l;
                            v = t;
                            k = k.withFitted(v);
                            improved = true;
                        }
                    }
                }
            }
            System.out.printf("step x%.2f: rms log error %.4f  %s%n", f, Math.sqrt(best), describe(v));
        }
        System.out.println("fitted: " + describe(v));
        System.out.println("setup                                   published  estimated  ratio");
        for (PublishedReal.Point pt : pts) {
            PpoSetup s = PpoSetup.of(pt);
            double published = s.flops() / 1e15 / pt.heuristicPflops();
            double est = symmetricSeconds(s, k);
            System.out.printf("%s  %8.1f s %8.1f s  %5.2f%n", s.label(), published, est, est / published);
        }
    }

    /** Iteration seconds of the planner's searched plan (a step-bounded, seeded search). */
    static double searchedSeconds(PpoSetup s, CostConstants k, long steps) {
        var o = org.sparkrlhf.planner.Planner.plan(s.problem(k), 1, 1e9, steps);
        return o.plan() == null ? Double.POSITIVE_INFINITY : o.result().iterationSeconds();
    }

    static void fitSplit(long steps, double[] shares) {
        List<PublishedReal.Point> pts = PublishedReal.points();
        CostConstants base = CostConstants.calibrated();
        double bestShare = Double.NaN;
        double bestLoss = Double.POSITIVE_INFINITY;
        for (double share : shares) {
            CostConstants k = base.withDecodeTpShare(share);
            double sum = 0;
            double bias = 0;
            for (PublishedReal.Point pt : pts) {
                PpoSetup s = PpoSetup.of(pt);
                double published = s.flops() / 1e15 / pt.realPflops();
                double d = Math.log(searchedSeconds(s, k, steps) / published);
                sum += d * d;
                bias += d;
            }
            double rms = Math.sqrt(sum / pts.size());
            System.out.printf("decode tp share %.2f: rms log error of searched plans vs ReaL %.4f (mean log error %+.4f)%n",
                    share, rms, bias / pts.size());
            if (rms < bestLoss) {
                bestLoss = rms;
                bestShare = share;
            }
        }
        CostConstants k = base.withDecodeTpShare(bestShare);
        System.out.printf("fitted share %.2f: decodeLayerOverhead=%.4g decodeTpOverhead=%.4g%n", bestShare,
                k.decodeLayerOverhead(), k.decodeTpOverhead());
    }

    static String describe(double[] v) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < v.length; i++) {
            b.append(CostConstants.FITTED_NAMES[i]).append('=').append(String.format("%.4g", v[i])).append(' ');
        }
        return b.toString().trim();
    }
}
