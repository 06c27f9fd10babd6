package org.sparkrlhf.planner.bench;

import org.sparkrlhf.planner.Planner;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.CandidateSpace;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The planner over ReaL's PPO setups (prompt 128; generation 128, 384 and 896; 2^17 tokens a batch; 4
 * PPO mini-batches; scale actor / scale critic / scale both, 8 to 128 H100): for each, the searched
 * plan's iteration time and throughput (PFLOP/s, ReaL's analytic FLOP count) against the symmetric and
 * colocated baselines, and the search time. Then the estimator check: the planner's symmetric plan
 * against ReaL's measured heuristic plan, and its searched plan against ReaL's measured searched plan
 * (the throughput figure of the ReaL paper, {@link PublishedReal}). Last, one search of the largest
 * setup with the default budget, timed end to end. Column "max x" is the most any plan could gain over the
 * symmetric one under the cost model ({@link #criticalPathBound}).
 * <p>
 * Usage: {@code PlannerBenchmark [seconds-per-setup (10)] [default-budget (20)]}.
 */
public final class PlannerBenchmark {
    private PlannerBenchmark() {
    }

    record Row(PublishedReal.Point point, PpoSetup setup, double searched, double symmetric, double colocated,
               double searchSeconds, long steps, String plan, double bound) {
    }

    /**
     * A lower bound of the steady-state iteration time of any plan under the cost model: actor_gen of the
     * next iteration waits for actor_train, which waits for the three inference calls, which wait for
     * actor_gen; each call takes at least its fastest candidate (any mesh, ignoring memory, reallocations
     * and data transfers). So no plan can be faster than symmetric / bound times the symmetric plan.
     */
    static double criticalPathBound(PlanningProblem p) {
        CandidateSpace space = new CandidateSpace(p);
        var g = p.graph();
        double gen = 0;
        double inf = 0;
        double train = 0;
        for (int c = 0; c < g.size(); c++) {
            int f = space.fastest(c);
            if (f < 0) {
                return Double.NaN;
            }
            double t = space.candidate(c, f).estimate().seconds();
            switch (g.call(c).kind()) {
                case GENERATE -> gen = Math.max(gen, t);
                case INFERENCE -> inf = Math.max(inf, t);
                case TRAIN -> train = g.call(c).role().equals("actor") ? t : train;
            }
        }
        return gen + inf + train;
    }

    public static void main(String[] args) {
        double budget = args.length > 0 ? Double.parseDouble(args[0]) : 10;
        double defaultBudget = args.length > 1 ? Double.parseDouble(args[1]) : 20;
        CostConstants k = CostConstants.calibrated();
        long t0 = System.nanoTime();
        System.out.printf(Locale.ROOT, "planner benchmark: ReaL's PPO setups on H100 nodes, search budget %.1f s per setup, "
                + "seed 1, %d cores%n%n", budget, Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "%-40s %9s %7s %9s %7s %9s %7s %6s %6s %7s %8s %7s%n", "setup", "searched", "PFLOP/s",
                "symmetric", "PFLOP/s", "colocated", "PFLOP/s", "x sym", "x col", "search", "steps", "max x");
        List<Row> rows = new ArrayList<>();
        for (PublishedReal.Point pt : PublishedReal.points()) {
            PpoSetup s = PpoSetup.of(pt);
            Planner.Outcome o = Planner.plan(s.problem(k), 1, budget, Long.MAX_VALUE);
            double searched = o.plan() == null ? Double.NaN : o.result().iterationSeconds();
            Row r = new Row(pt, s, searched, o.symmetricSeconds(), o.colocatedSeconds(), o.search().elapsedSeconds(),
                    o.search().steps(), describe(o), criticalPathBound(o.problem()));
            rows.add(r);
            double f = s.flops() / 1e15;
            System.out.printf(Locale.ROOT, "%-40s %8.2fs %7.3f %8s %7s %8s %7s %6s %6s %6.1fs %8d %7s%n", s.label(), searched,
                    f / searched, secs(r.symmetric), pflops(f, r.symmetric), secs(r.colocated), pflops(f, r.colocated),
                    ratio(r.symmetric, searched), ratio(r.colocated, searched), r.searchSeconds, r.steps,
                    ratio(r.symmetric, r.bound));
        }
        System.out.println();
        summary(rows, "generation 128 and 896 (the benchmark's setups)", true);
        summary(rows, "all generation lengths (128, 384, 896)", false);

        System.out.println();
        System.out.println("searched plans (call: GPUs dp/tp/pp):");
        for (Row r : rows) {
            System.out.printf(Locale.ROOT, "  %s  %s%n", r.setup.label(), r.plan);
        }

        System.out.println();
        System.out.println("estimator check against ReaL's measurements (ReaL paper / ReaLHF README throughput figure,");
        System.out.println("PFLOP/s converted to seconds with ReaL's FLOP count; gap = estimate / measured - 1):");
        System.out.printf(Locale.ROOT, "%-40s %10s %10s %7s   %10s %10s %7s%n", "setup", "heur meas", "sym est", "gap",
                "ReaL meas", "search est", "gap");
        double symSq = 0;
        double symAbs = 0;
        double realSq = 0;
        double realAbs = 0;
        int n = 0;
        for (Row r : rows) {
            double f = r.setup.flops() / 1e15;
            double heur = f / r.point.heuristicPflops();
            double real = f / r.point.realPflops();
            double g1 = r.symmetric / heur - 1;
            double g2 = r.searched / real - 1;
            System.out.printf(Locale.ROOT, "%-40s %9.1fs %9.1fs %+6.1f%%   %9.1fs %9.1fs %+6.1f%%%n", r.setup.label(), heur,
                    r.symmetric, 100 * g1, real, r.searched, 100 * g2);
            symSq += Math.pow(Math.log(r.symmetric / heur), 2);
            realSq += Math.pow(Math.log(r.searched / real), 2);
            symAbs += Math.abs(g1);
            realAbs += Math.abs(g2);
            n++;
        }
        System.out.printf(Locale.ROOT, "symmetric vs ReaL-Heuristic: mean |gap| %.1f%%, rms log error %.3f (fitted: the"
                + " constants were calibrated on these)%n", 100 * symAbs / n, Math.sqrt(symSq / n));
        System.out.printf(Locale.ROOT, "searched vs ReaL searched:   mean |gap| %.1f%%, rms log error %.3f (only the"
                + " decoding tp share was fitted on these)%n", 100 * realAbs / n, Math.sqrt(realSq / n));

        System.out.println();
        PpoSetup big = new PpoSetup("both", "llama2-70b", 128, 896);
        long b0 = System.nanoTime();
        Planner.Outcome o = Planner.plan(big.problem(k), 1, defaultBudget, Long.MAX_VALUE);
        double wall = (System.nanoTime() - b0) / 1e9;
        System.out.printf(Locale.ROOT, "default budget on the largest setup (%s): %.1f s search budget, %.2f s candidate"
                        + " space + baselines, %.2f s search (%d steps), %.2f s end to end; plan %.2f s vs symmetric %s%n",
                big.label(), defaultBudget, o.spaceSeconds(), o.search().elapsedSeconds(), o.search().steps(), wall,
                o.result().iterationSeconds(), secs(o.symmetricSeconds()));
        System.out.printf(Locale.ROOT, "benchmark wall time %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    private static void summary(List<Row> rows, String what, boolean only128And896) {
        double sum = 0;
        double logSum = 0;
        double min = Double.POSITIVE_INFINITY;
        int n = 0;
        int slowerThanSym = 0;
        int slowerThanCol = 0;
        double colSum = 0;
        int colN = 0;
        double boundSum = 0;
        Row worst = null;
        for (Row r : rows) {
            if (only128And896 && r.point.genLen() == 384) {
                continue;
            }
            double x = r.symmetric / r.searched;
            if (worst == null || x < worst.symmetric / worst.searched) {
                worst = r;
            }
            boundSum += r.symmetric / r.bound;
            sum += x;
            logSum += Math.log(x);
            min = Math.min(min, x);
            n++;
            if (r.searched > r.symmetric * (1 + 1e-12)) {
                slowerThanSym++;
            }
            if (Double.isFinite(r.colocated)) {
                colSum += r.colocated / r.searched;
                colN++;
                if (r.searched > r.colocated * (1 + 1e-12)) {
                    slowerThanCol++;
                }
            }
        }
        System.out.printf(Locale.ROOT, "%s: %d setups; speedup over symmetric: mean %.2fx, geometric mean %.2fx, min %.2fx;"
                        + " over colocated (where it fits, %d setups): mean %.2fx; searched slower than symmetric in %d,"
                        + " than colocated in %d%n", what, n, sum / n, Math.exp(logSum / n), min, colN,
                colN == 0 ? Double.NaN : colSum / colN, slowerThanSym, slowerThanCol);
        System.out.printf(Locale.ROOT, "  worst: %s (%.2fx); the critical-path bound (column max x) allows at most %.2fx"
                + " on average%n", worst.setup.label().trim(), worst.symmetric / worst.searched, boundSum / n);
    }

    private static String describe(Planner.Outcome o) {
        if (o.plan() == null) {
            return "(none fits)";
        }
        StringBuilder b = new StringBuilder();
        var g = o.problem().graph();
        for (int c = 0; c < g.size(); c++) {
            Candidate x = o.plan()[c];
            b.append(c == 0 ? "" : ", ").append(g.call(c).name()).append(' ').append(x.mesh().label()).append(' ')
                    .append(x.strategy().label());
        }
        return b.toString();
    }

    private static String secs(double s) {
        return Double.isFinite(s) ? String.format(Locale.ROOT, "%.2fs", s) : "n/a";
    }

    private static String pflops(double pflop, double s) {
        return Double.isFinite(s) ? String.format(Locale.ROOT, "%.3f", pflop / s) : "n/a";
    }

    private static String ratio(double base, double s) {
        return Double.isFinite(base) ? String.format(Locale.ROOT, "%.2f", base / s) : "n/a";
    }
}
