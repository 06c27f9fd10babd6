package org.sparkrlhf.planner.plan;

import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.Simulator;

/** Estimates a given plan (one read from JSON, say) with the problem's cost model and simulator. */
public final class PlanEvaluation {
    private PlanEvaluation() {
    }

    /** The plan as candidates, one per call (in graph order). */
    public static Candidate[] candidates(PlanningProblem problem, ExecutionPlan plan) {
        var g = problem.graph();
        Candidate[] a = new Candidate[g.size()];
        for (int c = 0; c < g.size(); c++) {
            ModelCall call = g.call(c);
            CallPlacement p = plan.placement(call.name());
            var model = problem.model(call.role());
            String why = p.strategy().invalidReason(model, p.mesh(), problem.cluster());
            if (why != null) {
                throw new IllegalArgumentException("call " + call.name() + ": " + why);
            }
            problem.checkRunnable(call.name(), p.strategy());
            var e = problem.costModel().estimateFixed(call, model, problem.workload(),
                    g.isTrainable(call.role()), p.mesh(), p.strategy(), problem.isHome(c));
            a[c] = new Candidate(c, p.mesh(), p.strategy(), e, -1);
        }
        return a;
    }

    public static SimResult evaluate(PlanningProblem problem, ExecutionPlan plan) {
        return new Simulator(problem).simulate(candidates(problem, plan));
    }

    /** The plan of an assignment. */
    public static ExecutionPlan plan(PlanningProblem problem, Candidate[] a) {
        var g = problem.graph();
        java.util.List<CallPlacement> ps = new java.util.ArrayList<>();
        for (int c = 0; c < g.size(); c++) {
            ps.add(a[c].placement(g.call(c).name()));
        }
        return new ExecutionPlan(g.algorithm(), ps);
    }
}
