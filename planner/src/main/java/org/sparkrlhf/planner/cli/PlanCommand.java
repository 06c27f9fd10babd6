package org.sparkrlhf.planner.cli;

import org.sparkrlhf.planner.Planner;
import org.sparkrlhf.planner.cost.CostConstants;
import org.sparkrlhf.planner.cost.FlopCounter;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.ExecutionPlan;
import org.sparkrlhf.planner.plan.PlanEvaluation;
import org.sparkrlhf.planner.plan.PlanJson;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.sim.TimelineSvg;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code spark-rlhf plan}: an execution plan for an RLHF dataflow graph on a cluster. */
public final class PlanCommand {
    static final String USAGE = """
            usage: spark-rlhf plan [options]            (or: --config RUN.yaml, same keys with underscores)
              --algorithm A          ppo | grpo | remax | rloo | dpo | ipo | gr-dpo | gr-ipo | sft | rw   (ppo)
              --actor M              model preset (llama2-7b, llama2-13b, codellama-34b, llama2-70b) or an
                                     HF config.json / model directory                           (llama2-7b)
              --critic M             critic model (and reward model unless --reward)            (= actor)
              --ref M, --reward M    reference / reward model                     (= actor / = critic)
              --nodes N              nodes (or CPU executors)                                    (1)
              --gpus-per-node N      devices per node (or task slots per executor)               (8)
              --gpu G                h100 | a100 | cpu                                           (h100)
              --gpu-memory-gib X     device memory override
              --prompt-len N         prompt tokens                                               (128)
              --gen-len N            generated tokens                                            (896)
              --batch-tokens N       tokens of a batch                                           (131072)
              --ppo-minibatches N    optimizer steps per batch of the RL algorithms              (4)
              --search-seconds S     search time budget                                          (20)
              --search-steps N       stop the search after N proposals (reproducible with --seed)
              --seed S               random seed of the search                                   (1)
              --baseline B           symmetric | colocated (all devices data parallel, ZeRO-3 with --zero3):
                                     report that baseline instead of searching
              --profile FILE.csv     measured compute times (model,gpu,op,tp,tokens,context,seconds)
              --evaluate PLAN.json   estimate a given plan instead of searching
              --zero3                also consider ZeRO-3 data parallel (DeepSpeed's sharding), which this
                                     project's runtime does not run: its runs refuse such plans
              --json                 print the plan as one JSON object
              --timeline FILE.svg    write a Gantt chart, one row per device
            """;

    private PlanCommand() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command; returns the exit code (0 ok, 1 no plan fits, 2 bad input). */
    public static int run(String[] args) {
        return run(args, System.out, System.err);
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help")) {
                out.print(USAGE);
                return 0;
            }
        }
        PlanOptions o;
        PlanningProblem problem;
        try {
            o = PlanOptions.parse(args);
            problem = problem(o);
        } catch (IllegalArgumentException e) {
            err.println("spark-rlhf plan: " + e.getMessage());
            return 2;
        }
        try {
            return execute(o, problem, out, err);
        } catch (IllegalArgumentException e) {
            err.println("spark-rlhf plan: " + e.getMessage());
            return 2;
        } catch (IOException e) {
            err.println("spark-rlhf plan: " + e.getMessage());
            return 2;
        }
    }

    static PlanningProblem problem(PlanOptions o) {
        DataflowGraph graph = Algorithms.of(o.algorithm, o.ppoMinibatches);
        ClusterSpec cluster = ClusterSpec.preset(o.gpu, o.nodes, o.gpusPerNode);
        if (o.gpuMemoryGib != null) {
            cluster = cluster.withGpuMemory((long) (o.gpuMemoryGib * GpuSpec.GIB));
        }
        ModelSpec actor = ModelSpec.resolve(o.actor);
        ModelSpec ref = o.ref == null ? actor : ModelSpec.resolve(o.ref);
        ModelSpec critic = (o.critic == null ? actor : ModelSpec.resolve(o.critic)).withValueHead();
        ModelSpec reward = o.reward == null ? critic : ModelSpec.resolve(o.reward).withValueHead();
        Map<String, ModelSpec> models = new LinkedHashMap<>();
        for (String role : graph.roles()) {
            models.put(role, switch (role) {
                case "actor" -> actor;
                case "ref" -> ref;
                case "critic" -> critic;
                case "reward" -> reward;
                default -> throw new IllegalArgumentException("no model option for role " + role);
            });
        }
        ProfileTable profile = ProfileTable.empty();
        for (String p : o.profiles) {
            profile.read(Path.of(p));
        }
        Workload w = new Workload(o.promptLen, o.genLen, o.batchTokens);
        return new PlanningProblem(graph, models, cluster, w, CostConstants.calibrated(), profile, o.zero3);
    }

    private static int execute(PlanOptions o, PlanningProblem problem, PrintStream out, PrintStream err)
            throws IOException {
        Candidate[] plan;
        SimResult result;
        Double symmetric;
        Double colocated;
        double searchSeconds = 0;
        String how;
        if (o.evaluate != null || o.baseline != null) {
            Simulator sim = new Simulator(problem);
            Candidate[] sym = Baselines.symmetric(problem, sim);
            Candidate[] col = Baselines.colocated(problem, sim);
            symmetric = sym == null ? null : sim.iterationSeconds(sym);
            colocated = col == null ? null : sim.iterationSeconds(col);
            if (o.evaluate != null) {
                Path f = Path.of(o.evaluate);
                String text;
                try {
                    text = Files.readString(f, StandardCharsets.UTF_8);
                } catch (IOException e) {
                    throw new IllegalArgumentException(f + ": cannot read: " + e.getMessage());
                }
                ExecutionPlan given = PlanJson.read(text, problem.graph(), problem.cluster(), f.toString());
                plan = PlanEvaluation.candidates(problem, given);
                how = "plan read from " + f;
            } else {
                plan = o.baseline.equals("symmetric") ? sym : col;
                how = o.baseline + " baseline";
                if (plan == null) {
                    err.println("spark-rlhf plan: the " + o.baseline + " baseline is not valid here or does not fit in memory");
                    return 1;
                }
            }
            result = sim.simulate(plan);
        } else {
            Planner.Outcome oc = Planner.plan(problem, o.seed, o.searchSeconds,
                    o.searchSteps == null ? Long.MAX_VALUE : o.searchSteps);
            symmetric = oc.symmetricResult() == null ? null : oc.symmetricSeconds();
            colocated = oc.colocatedResult() == null ? null : oc.colocatedSeconds();
            searchSeconds = oc.search().elapsedSeconds();
            plan = oc.plan();
            result = oc.result();
            how = String.format(Locale.ROOT, "searched %.1f s, %d steps, seed %d", searchSeconds, oc.search().steps(), o.seed);
            if (plan == null) {
                err.println("spark-rlhf plan: no plan fits: every choice of some call exceeds device memory ("
                        + problem.cluster().totalGpus() + " x " + problem.cluster().gpu().name() + ")");
                return 1;
            }
        }
        if (o.timeline != null) {
            String title = String.format(Locale.ROOT, "%s on %d x %d %s: %.2f s per iteration (%s)",
                    problem.graph().algorithm(), problem.cluster().nodes(), problem.cluster().gpusPerNode(),
                    problem.cluster().gpu().name(), result.iterationSeconds(), how);
            writeAtomically(Path.of(o.timeline), TimelineSvg.render(result.timeline(), problem.cluster().totalGpus(),
                    problem.cluster().gpusPerNode(), title));
        }
        if (o.json) {
            List<PlanJson.CallFigures> figs = new ArrayList<>();
            for (int c = 0; c < problem.graph().size(); c++) {
                ModelCall call = problem.graph().call(c);
                figs.add(new PlanJson.CallFigures(call.role(), call.kind().name(), problem.model(call.role()).name(),
                        result.callSeconds()[c], result.callMemoryBytes()[c], result.reallocSeconds()[c]));
            }
            out.println(PlanJson.write(PlanJson.toJson(PlanEvaluation.plan(problem, plan), problem.cluster(),
                    result.iterationSeconds(), figs, symmetric, colocated, searchSeconds)));
        } else {
            printTable(out, problem, plan, result, symmetric, colocated, how);
        }
        if (!result.feasible()) {
            err.println("spark-rlhf plan: the plan does not fit: " + result.infeasibleReason());
            return 1;
        }
        return 0;
    }

    private static void writeAtomically(Path target, String text) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        if (dir != null) {
            Files.createDirectories(dir);
        }
        Path tmp = Files.createTempFile(dir, ".timeline", ".tmp");
        try {
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    static void printTable(PrintStream out, PlanningProblem p, Candidate[] plan, SimResult r, Double symmetric,
                           Double colocated, String how) {
        ClusterSpec cl = p.cluster();
        Workload w = p.workload();
        StringBuilder models = new StringBuilder();
        p.models().forEach((role, m) -> models.append(models.length() == 0 ? "" : ", ").append(role).append(' ').append(m.name()));
        out.printf(Locale.ROOT, "%s on %d x %d %s (%.0f GiB); %s%n", p.graph().algorithm(), cl.nodes(), cl.gpusPerNode(),
                cl.gpu().name(), cl.gpu().memoryBytes() / (double) GpuSpec.GIB, models);
        out.printf(Locale.ROOT, "batch: %d sequences of %d prompt + %d generated tokens%n", w.sequences(), w.promptLen(),
                w.genLen());
        out.printf(Locale.ROOT, "%-18s %-9s %-12s %4s %10s %12s %10s%n", "call", "GPUs", "dp/tp/pp", "mb", "est. s",
                "mem/GPU", "realloc s");
        for (int c = 0; c < plan.length; c++) {
            Candidate x = plan[c];
            out.printf(Locale.ROOT, "%-18s %-9s %-12s %4d %10.2f %12s %10.2f%n", p.graph().call(c).name(),
                    x.mesh().label(), x.strategy().label(), x.strategy().microBatches(), r.callSeconds()[c],
                    bytes(r.callMemoryBytes()[c]), r.reallocSeconds()[c]);
        }
        out.printf(Locale.ROOT, "iteration: %s (%s)%n", seconds(r.iterationSeconds()), how);
        out.printf(Locale.ROOT, "baselines: symmetric %s, colocated %s%n", seconds(symmetric), seconds(colocated));
        if (p.graph().algorithm().equals("ppo") && Double.isFinite(r.iterationSeconds())) {
            double f = FlopCounter.ppoIteration(p.model("actor"), p.model("critic"), p.model("ref"), p.model("reward"),
                    w.sequences(), w.promptLen(), w.genLen());
            double rate = f / r.iterationSeconds();
            out.printf(Locale.ROOT, "throughput: %s (ReaL's FLOP count)%n", rate >= 1e14
                    ? String.format(Locale.ROOT, "%.3f PFLOP/s", rate / 1e15)
                    : String.format(Locale.ROOT, "%.3g GFLOP/s", rate / 1e9));
        }
    }

    private static String bytes(double b) {
        return b >= GpuSpec.GIB ? String.format(Locale.ROOT, "%.1f GiB", b / GpuSpec.GIB)
                : String.format(Locale.ROOT, "%.1f MiB", b / (1 << 20));
    }

    private static String seconds(Double s) {
        return s == null || !Double.isFinite(s) ? "n/a (not valid or does not fit)" : String.format(Locale.ROOT, "%.2f s", s);
    }
}
