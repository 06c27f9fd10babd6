package org.sparkrlhf.planner;

import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.search.CandidateSpace;
import org.sparkrlhf.planner.search.PlanSearch;
import org.sparkrlhf.planner.search.SearchResult;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.Simulator;

import java.util.Arrays;

/** Plans a problem: builds the candidate space, the two baselines, and searches from them. */
public final class Planner {
    private Planner() {
    }

    /**
     * The outcome of planning. {@code plan} is null when nothing fits; a baseline is null when it is not
     * valid or does not fit. {@code spaceSeconds} is the time spent estimating candidates.
     */
    public record Outcome(PlanningProblem problem, Candidate[] plan, SimResult result, Candidate[] symmetric,
                          SimResult symmetricResult, Candidate[] colocated, SimResult colocatedResult,
                          SearchResult search, double spaceSeconds) {
        public double symmetricSeconds() {
            return symmetricResult == null ? Double.NaN : symmetricResult.iterationSeconds();
        }

        public double colocatedSeconds() {
            return colocatedResult == null ? Double.NaN : colocatedResult.iterationSeconds();
        }
    }

    public static Outcome plan(PlanningProblem problem, long seed, double searchSeconds, long maxSteps) {
        long t0 = System.nanoTime();
        CandidateSpace space = new CandidateSpace(problem);
        Simulator sim = new Simulator(problem);
        Candidate[] sym = Baselines.symmetric(problem, sim);
        Candidate[] col = Baselines.colocated(problem, sim);
        double spaceSeconds = (System.nanoTime() - t0) / 1e9;
        SearchResult sr = new PlanSearch(space, sim).search(seed, searchSeconds, maxSteps, Arrays.asList(sym, col));
        Candidate[] best = sr.best();
        SimResult br = best == null ? null : sim.simulate(best);
        return new Outcome(problem, best, br, sym, sym == null ? null : sim.simulate(sym), col,
                col == null ? null : sim.simulate(col), sr, spaceSeconds);
    }
}
