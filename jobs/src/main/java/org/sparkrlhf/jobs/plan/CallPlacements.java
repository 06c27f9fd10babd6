package org.sparkrlhf.jobs.plan;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.sparkrlhf.datasets.tables.PlanRow;
import org.sparkrlhf.jobs.config.Algorithm;
import org.sparkrlhf.jobs.config.ConfigException;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.planner.Planner;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.plan.Candidate;
import org.sparkrlhf.planner.plan.CallPlacement;
import org.sparkrlhf.planner.plan.ExecutionPlan;
import org.sparkrlhf.planner.plan.PlanEvaluation;
import org.sparkrlhf.planner.plan.PlanJson;
import org.sparkrlhf.planner.plan.PlanningProblem;
import org.sparkrlhf.planner.search.Baselines;
import org.sparkrlhf.planner.sim.SimResult;
import org.sparkrlhf.planner.sim.TimelineEvent;
import org.sparkrlhf.planner.sim.Simulator;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The run's execution plan as the training loops use it: for every model function call its
 * {@link Placement} (devices of the discovered cluster, dp / tp / pp, micro-batches), chosen once
 * at the start of the run by {@code plan.mode}:
 * <ul>
 *   <li>{@code search}: the planner's search (seeded by the run's seed, {@code plan.search_seconds});</li>
 *   <li>{@code baseline}: every call data parallel on all devices (the planner's colocated layout
 *       without ZeRO-3 sharding, which the CPU engine does not have);</li>
 *   <li>{@code file}: a plan JSON ({@code spark-rlhf plan --json} writes one) checked against the
 *       graph and the cluster;</li>
 *   <li>{@code manual}: the layouts of {@code plan.calls}, on the devices given.</li>
 * </ul>
 * The engine has no ZeRO-3 sharding (it keeps whole data-parallel replicas and optimizer states), so
 * the planner's problem excludes ZeRO-3 layouts ({@link RunScenario#problem}) and a plan file with
 * one is refused, naming the call. The loops ask {@link #placement(String)} per call, so every algorithm places its calls the
 * same way.
 */
public final class CallPlacements {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String how;
    private final Map<String, Placement> byCall;
    private final Map<String, Estimate> estimates;
    private final double estimatedIterationSeconds;
    private final String planJson;

    /** A call's simulated seconds and its place in the simulated iteration (seconds from its start). */
    record Estimate(double seconds, double start, double end) {
    }

    CallPlacements(String how, Map<String, Placement> byCall, Map<String, Estimate> estimates,
                   double estimatedIterationSeconds, String planJson) {
        this.how = how;
        this.byCall = new LinkedHashMap<>(byCall);
        this.estimates = new LinkedHashMap<>(estimates);
        this.estimatedIterationSeconds = estimatedIterationSeconds;
        this.planJson = planJson;
    }

    /** The plan of {@code config} on the discovered devices; logs the choice to {@code log}. */
    public static CallPlacements choose(RunConfig config, ClusterInventory inventory, PrintStream log) {
        return choose(config, RunScenario.graph(config), inventory, log);
    }

    /** The plan of {@code graph} (the run's, or an algorithm defined elsewhere) for {@code config}; logged. */
    public static CallPlacements choose(RunConfig config, DataflowGraph graph, ClusterInventory inventory, PrintStream log) {
        CallPlacements p = choose(config, graph, inventory);
        log.print(p.describe());
        if (!config.plan().mode().equals("manual")) {
            log.println(estimateSource(config, graph, inventory));
        }
        return p;
    }

    /** Which profile tables the estimates come from, or that they come from ReaL's H100-fitted constants. */
    static String estimateSource(RunConfig config, DataflowGraph graph, ClusterInventory inventory) {
        String device = RunScenario.cluster(inventory, RunScenario.gpuPreset(config)).gpu().name();
        Map<String, ModelSpec> models = new LinkedHashMap<>();
        for (String role : graph.roles()) {
            models.put(role, RunScenario.model(config, role));
        }
        RunScenario.Profiles p = RunScenario.profiles(config, models, device);
        if (p.sources().isEmpty()) {
            return "  estimates: roofline with constants fitted to ReaL on H100s (no profile table for " + device
                    + "; spark-rlhf profile makes one)";
        }
        return "  estimates: profile " + String.join(", ", p.sources()) + " (call overhead "
                + String.format(Locale.ROOT, "%.4f s", p.constants().callOverhead()) + ")"
                + (p.missing().isEmpty() ? "" : "; roofline for " + p.missing());
    }

    public static CallPlacements choose(RunConfig config, ClusterInventory inventory) {
        return choose(config, RunScenario.graph(config), inventory);
    }

    static CallPlacements choose(RunConfig config, DataflowGraph graph, ClusterInventory inventory) {
        String mode = config.plan().mode();
        if (mode.equals("manual")) {
            return manual(config, graph, inventory);
        }
        ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
        PlanningProblem problem = RunScenario.problem(config, graph, cluster);
        return switch (mode) {
            case "search" -> searched(config, inventory, problem);
            case "baseline" -> baseline(config, inventory, problem);
            case "file" -> fromFile(config, inventory, problem);
            default -> throw new IllegalArgumentException(config.source() + ": plan.mode: unknown mode " + mode);
        };
    }

    public Placement placement(String call) {
        Placement p = byCall.get(call);
        if (p == null) {
            throw new IllegalArgumentException("the plan has no call '" + call + "' (calls: " + byCall.keySet() + ")");
        }
        return p;
    }

    public Map<String, Placement> placements() {
        return byCall;
    }

    /**
     * Every call's data-parallel ranks must each get at least one of the iteration's
     * {@code data.batch_size} rows; else a clear error naming the call.
     */
    public void checkBatchSize(RunConfig config) {
        for (Placement p : byCall.values()) {
            if (config.data().batchSize() < p.dp()) {
                throw new IllegalArgumentException(config.source() + ": data.batch_size " + config.data().batchSize()
                        + " is smaller than the " + p.dp() + " data-parallel ranks of " + p.call());
            }
        }
    }

    /** Every device some call runs on, ascending. */
    public List<DeviceSlot> devices() {
        Map<Integer, DeviceSlot> all = new java.util.TreeMap<>();
        for (Placement p : byCall.values()) {
            for (DeviceSlot d : p.devices()) {
                all.put(d.index(), d);
            }
        }
        return List.copyOf(all.values());
    }

    /**
     * The home of a model role: where its train call runs (its optimizer state stays there), or,
     * for a frozen model, its first call. Other calls on the role get copies reallocated from it.
     */
    public Placement home(String role) {
        Placement first = null;
        for (Placement p : byCall.values()) {
            if (p.role().equals(role)) {
                if (p.call().endsWith("_train")) {
                    return p;
                }
                first = first == null ? p : first;
            }
        }
        if (first == null) {
            throw new IllegalArgumentException("the plan has no call on model '" + role + "'");
        }
        return first;
    }

    public String how() {
        return how;
    }

    public String planJson() {
        return planJson;
    }

    public double estimatedIterationSeconds() {
        return estimatedIterationSeconds;
    }

    /** The plans-table row of an iteration: this plan, the estimates and the measured seconds per call. */
    public PlanRow planRow(Map<String, Double> measuredSeconds, Double measuredIterationSeconds, Instant time) {
        List<PlanRow.CallTiming> calls = new ArrayList<>();
        for (String call : byCall.keySet()) {
            Estimate e = estimates.get(call);
            calls.add(e == null ? new PlanRow.CallTiming(call, Double.NaN, measuredSeconds.get(call), null, null)
                    : new PlanRow.CallTiming(call, e.seconds(), measuredSeconds.get(call), e.start(), e.end()));
        }
        return new PlanRow(planJson, calls, estimatedIterationSeconds, measuredIterationSeconds, time);
    }

    /** Each call's estimated seconds (calls without an estimate are left out). */
    public Map<String, Double> estimatedSeconds() {
        Map<String, Double> out = new LinkedHashMap<>();
        estimates.forEach((call, e) -> {
            if (Double.isFinite(e.seconds())) {
                out.put(call, e.seconds());
            }
        });
        return out;
    }

    /** One line per call, for the run's log. */
    public String describe() {
        StringBuilder s = new StringBuilder("plan (" + how + "): ");
        s.append(Double.isFinite(estimatedIterationSeconds)
                ? String.format(Locale.ROOT, "estimated %.3g s per iteration%n", estimatedIterationSeconds)
                : "no estimate" + System.lineSeparator());
        for (Placement p : byCall.values()) {
            Estimate est = estimates.get(p.call());
            Double e = est == null ? null : est.seconds();
            s.append(String.format(Locale.ROOT, "  %-12s %-7s devices %-12s dp=%d tp=%d pp=%d micro_batches=%d%s%n",
                    p.call(), p.role(), java.util.Arrays.toString(p.deviceIndices()).replace(" ", ""), p.dp(), p.tp(),
                    p.pp(), p.microBatches(),
                    e == null || !Double.isFinite(e) ? "" : String.format(Locale.ROOT, " est %.3g s", e)));
        }
        return s.toString();
    }

    // ------------------------------------------------------------------ the modes

    private static CallPlacements manual(RunConfig config, DataflowGraph graph, ClusterInventory inventory) {
        Map<String, Placement> byCall = new LinkedHashMap<>();
        for (RunConfig.CallLayout l : config.plan().calls().values()) {
            List<DeviceSlot> devices = new ArrayList<>();
            for (int d : l.devices()) {
                if (d >= inventory.size()) {
                    throw new IllegalArgumentException(config.source() + ": plan.calls." + l.call() + ".devices: no device "
                            + d + "; the cluster has " + inventory.size() + " (0.." + (inventory.size() - 1) + ")");
                }
                devices.add(inventory.device(d));
            }
            byCall.put(l.call(), new Placement(l.call(), Algorithm.roleOf(l.call()), devices, l.dp(), l.tp(), l.pp(),
                    l.microBatches()));
        }
        byCall = inGraphOrder(config, graph, byCall);
        // Estimates where the layouts are ones the planner can express (consecutive, aligned meshes).
        Map<String, Estimate> estimates = new LinkedHashMap<>();
        double iteration = Double.NaN;
        String json;
        try {
            ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
            PlanningProblem problem = RunScenario.problem(config, graph, cluster);
            List<CallPlacement> ps = new ArrayList<>();
            for (Placement p : byCall.values()) {
                ps.add(new CallPlacement(p.call(), p.mesh(), p.strategy()));
            }
            ExecutionPlan plan = new ExecutionPlan(problem.graph().algorithm(), ps);
            Candidate[] a = PlanEvaluation.candidates(problem, plan);
            SimResult r = new Simulator(problem).simulate(a);
            iteration = r.iterationSeconds();
            estimates = estimates(problem.graph(), r);
            json = PlanJson.write(PlanJson.toJson(plan, cluster, iteration, figures(problem, r), null, null, null));
        } catch (IllegalArgumentException e) {
            json = plainJson(config, byCall, e.getMessage());
        }
        return new CallPlacements("manual, from " + config.source(), byCall, estimates, iteration, json);
    }

    private static CallPlacements searched(RunConfig config, ClusterInventory inventory, PlanningProblem problem) {
        Planner.Outcome oc = Planner.plan(problem, config.seed(), config.plan().searchSeconds(), Long.MAX_VALUE);
        if (oc.plan() == null) {
            throw new IllegalArgumentException(config.source() + ": plan.mode search: no plan fits the models in the "
                    + problem.cluster().totalGpus() + " devices' memory");
        }
        String how = String.format(Locale.ROOT, "searched for %.1f s, %d steps; baselines: symmetric %s, colocated %s",
                oc.search().elapsedSeconds(), oc.search().steps(), seconds(oc.symmetricSeconds()),
                seconds(oc.colocatedSeconds()));
        return fromCandidates(how, config, inventory, problem, oc.plan(), oc.result(), finite(oc.symmetricSeconds()),
                finite(oc.colocatedSeconds()), oc.search().elapsedSeconds());
    }

    /**
     * Each call's estimated seconds in the baseline plan (every call data parallel on all devices),
     * priced with the profile tables and costs stored now; an IllegalArgumentException when the batch
     * cannot run so.
     */
    public static Map<String, Double> baselineEstimates(RunConfig config, ClusterInventory inventory) {
        ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
        return baseline(config, inventory, RunScenario.problem(config, RunScenario.graph(config), cluster)).estimatedSeconds();
    }

    /**
     * The estimate of train call {@code name} on one device with no data-parallel peers, over the rows
     * one of {@code ranks} data-parallel ranks gets (the batch's tokens over {@code ranks}); NaN when it
     * does not fit one device.
     */
    public static double aloneEstimate(RunConfig config, ClusterInventory inventory, String name, int ranks) {
        ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
        PlanningProblem problem = RunScenario.problem(config, RunScenario.graph(config), cluster);
        int c = problem.graph().indexOf(name);
        ModelCall call = problem.graph().call(c);
        Workload w = problem.workload();
        long tokens = Math.max(w.seqLen(), w.batchTokens() / ranks);
        var estimates = problem.costModel().estimate(call, problem.model(call.role()),
                new Workload(w.promptLen(), w.genLen(), tokens, w.speculation()), problem.graph().isTrainable(call.role()),
                DeviceMesh.of(cluster, 0, 1), ParallelStrategy.of(1, 1, 1, 1), problem.isHome(c));
        return estimates.isEmpty() ? Double.NaN : estimates.get(0).seconds();
    }

    private static CallPlacements baseline(RunConfig config, ClusterInventory inventory, PlanningProblem problem) {
        Simulator sim = new Simulator(problem);
        ParallelStrategy layout = ParallelStrategy.of(problem.cluster().totalGpus(), 1, 1, 1);
        Candidate[] a = Baselines.sameEverywhere(problem, sim, layout);
        if (a == null) {
            throw new IllegalArgumentException(config.source() + ": plan.mode baseline: data parallel on all "
                    + problem.cluster().totalGpus() + " devices cannot run this batch: " + Baselines.whyNot(problem, layout)
                    + "; use plan.mode search, or a batch that fills the devices");
        }
        return fromCandidates("baseline: every call data parallel on all devices", config, inventory, problem, a,
                sim.simulate(a), null, null, null);
    }

    /**
     * The checks of a {@code plan.mode: file} run's plan file that need no devices, made on the
     * driver before Spark starts: it reads and parses, places every call of the run's algorithm
     * once with a known role, each with dp, tp, pp and micro-batches >= 1 whose dp*tp*pp is its
     * devices' count, and none with ZeRO-3. A ConfigException naming the file, the call and the
     * field otherwise. The meshes' fit to the cluster is checked once the devices are found ({@link #choose}).
     */
    public static void checkPlanFile(RunConfig config) {
        if (!config.plan().mode().equals("file")) {
            return;
        }
        String file = config.plan().file();
        try {
            ExecutionPlan plan = PlanJson.read(readPlanFile(config), RunScenario.graph(config), null, file);
            for (CallPlacement p : plan.placements()) {
                if (p.strategy().zero3()) {
                    throw new IllegalArgumentException(file + ": call '" + p.call() + "': field 'zero3': ZeRO-3 "
                            + "sharding is not run by this runtime (it keeps whole data-parallel replicas)");
                }
            }
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage(), e);
        }
    }

    private static String readPlanFile(RunConfig config) {
        String file = config.plan().file();
        try {
            org.apache.hadoop.fs.Path path = new org.apache.hadoop.fs.Path(file);
            FileSystem fs = path.getFileSystem(HadoopFiles.conf());
            try (FSDataInputStream in = fs.open(path)) {
                return new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
        } catch (IOException e) {
            throw new IllegalArgumentException(config.source() + ": plan.file " + file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static CallPlacements fromFile(RunConfig config, ClusterInventory inventory, PlanningProblem problem) {
        String file = config.plan().file();
        ExecutionPlan plan = PlanJson.read(readPlanFile(config), problem.graph(), problem.cluster(), file);
        Candidate[] a;
        try {
            a = PlanEvaluation.candidates(problem, plan);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(config.source() + ": plan.file " + file + ": " + e.getMessage(), e);
        }
        return fromCandidates("read from " + file, config, inventory, problem, a, new Simulator(problem).simulate(a),
                null, null, null);
    }

    private static CallPlacements fromCandidates(String how, RunConfig config, ClusterInventory inventory,
                                                 PlanningProblem problem, Candidate[] a, SimResult r, Double symmetric,
                                                 Double colocated, Double searchSeconds) {
        DataflowGraph g = problem.graph();
        Map<String, Placement> byCall = new LinkedHashMap<>();
        List<CallPlacement> ps = new ArrayList<>();
        for (int c = 0; c < g.size(); c++) {
            ModelCall call = g.call(c);
            DeviceMesh mesh = a[c].mesh();
            ParallelStrategy s = a[c].strategy();
            List<DeviceSlot> devices = new ArrayList<>();
            for (int d : mesh.gpus()) {
                devices.add(inventory.device(d));
            }
            byCall.put(call.name(), new Placement(call.name(), call.role(), devices, s.dp(), s.tp(), s.pp(), s.microBatches()));
            ps.add(new CallPlacement(call.name(), mesh, s));
        }
        ExecutionPlan plan = new ExecutionPlan(g.algorithm(), ps);
        String json = PlanJson.write(PlanJson.toJson(plan, problem.cluster(), r.iterationSeconds(), figures(problem, r),
                symmetric, colocated, searchSeconds));
        return new CallPlacements(how, inGraphOrder(config, problem.graph(), byCall), estimates(g, r),
                r.iterationSeconds(), json);
    }

    /**
     * Each call's simulated seconds, start and end, in the second simulated iteration, from its start:
     * the steady state every iteration after the first has (the runtime starts an iteration when the
     * previous one has ended; the first differs, as its models load where their first calls run).
     */
    private static Map<String, Estimate> estimates(DataflowGraph graph, SimResult r) {
        double start = 0;
        for (TimelineEvent e : r.timeline()) {
            if (e.iteration() == 0) {
                start = Math.max(start, e.end());
            }
        }
        Map<String, Estimate> out = new LinkedHashMap<>();
        for (int c = 0; c < graph.size(); c++) {
            String name = graph.call(c).name();
            for (TimelineEvent e : r.timeline()) {
                if (e.iteration() == 1 && !e.reallocation() && e.label().equals(name)) {
                    out.put(name, new Estimate(r.callSeconds()[c], e.start() - start, e.end() - start));
                }
            }
        }
        return out;
    }

    private static List<PlanJson.CallFigures> figures(PlanningProblem problem, SimResult r) {
        List<PlanJson.CallFigures> f = new ArrayList<>();
        for (int c = 0; c < problem.graph().size(); c++) {
            ModelCall call = problem.graph().call(c);
            f.add(new PlanJson.CallFigures(call.role(), call.kind().name(), problem.model(call.role()).name(),
                    r.callSeconds()[c], r.callMemoryBytes()[c], r.reallocSeconds()[c]));
        }
        return f;
    }

    /** The calls in the algorithm's order (the config's order may differ). */
    private static Map<String, Placement> inGraphOrder(RunConfig config, DataflowGraph graph, Map<String, Placement> byCall) {
        Map<String, Placement> out = new LinkedHashMap<>();
        for (ModelCall c : graph.calls()) {
            Placement p = byCall.get(c.name());
            if (p == null) {
                throw new IllegalArgumentException(config.source() + ": the plan places no call '" + c.name() + "'");
            }
            out.put(c.name(), p);
        }
        return out;
    }

    /** A manual plan the planner cannot express, in the plan JSON's shape, with why there is no estimate. */
    private static String plainJson(RunConfig config, Map<String, Placement> byCall, String why) {
        ObjectNode root = JSON.createObjectNode();
        root.put("algorithm", config.algorithm().key());
        root.putNull("iteration_seconds");
        root.put("estimate_unavailable", why);
        ArrayNode calls = root.putArray("calls");
        for (Placement p : byCall.values()) {
            ObjectNode o = calls.addObject();
            o.put("name", p.call());
            o.put("role", p.role());
            ArrayNode gpus = o.putArray("gpus");
            for (int d : p.deviceIndices()) {
                gpus.add(d);
            }
            o.put("dp", p.dp());
            o.put("tp", p.tp());
            o.put("pp", p.pp());
            o.put("micro_batches", p.microBatches());
            o.put("zero3", false);
        }
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Double finite(double v) {
        return Double.isFinite(v) ? v : null;
    }

    private static String seconds(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.3g s", v) : "n/a";
    }

    /** Every device index some call uses. */
    Set<Integer> deviceIndices() {
        Set<Integer> s = new LinkedHashSet<>();
        for (Placement p : byCall.values()) {
            for (int d : p.deviceIndices()) {
                s.add(d);
            }
        }
        return s;
    }
}
