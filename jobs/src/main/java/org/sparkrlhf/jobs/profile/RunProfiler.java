package org.sparkrlhf.jobs.profile;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.profile.EngineProfile;
import org.sparkrlhf.gpuexec.profile.EngineProfiler;
import org.sparkrlhf.gpuexec.profile.Lockstep;
import org.sparkrlhf.gpuexec.profile.ProfileCsv;
import org.sparkrlhf.gpuexec.profile.ProfileGrid;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.Communicator;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.graph.RowSplit;
import org.sparkrlhf.jobs.plan.CallPlacements;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.plan.RunScenario;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ClusterInventory;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.runtime.RankResult;
import org.sparkrlhf.jobs.train.SpecialTokens;
import org.sparkrlhf.planner.cost.ProfileTable;
import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.cost.RuntimeCosts;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Workload;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * Profiles a run's models on its executors: for each distinct model (same name and config.json), all
 * the run's devices run the engine's profiler ({@link EngineProfiler}) side by side, in step, over the
 * token counts and lengths of the run's batch, and the per-micro-batch overhead
 * ({@link MicroBatchProfiler}); the first device's table is kept. Then the driver times all-reduces
 * through the runtime's communicator ({@link CollectiveProfiler}), empty calls through the
 * {@link BarrierCallRunner} over all the run's devices and real forward calls over the batch's rows
 * ({@link ForwardCallProfiler}: the per-call overhead), reallocations between two devices
 * ({@link ReallocationProfiler}), and real generation and train calls against the baseline plan's
 * estimates of them ({@link GenerateCallProfiler}, {@link TrainCallProfiler}: a decoding step's and a
 * training step's seconds beyond what the rest prices). The planner's clusters are homogeneous, so the
 * first device stands for every one of the run. Tables go next to the run's
 * output and into the cache ({@link ProfileStore}).
 */
public final class RunProfiler {
    /** Repeats of each timed point and of the empty call (after one warm-up); the median is kept. */
    static final int REPEATS = 5;
    static final int EMPTY_CALLS = 15;
    /**
     * Empty calls run first and not timed: a run's calls follow hundreds of stages, while the first
     * calls of a JVM run Spark's scheduling path before the JIT compiles it (measured on local[2]:
     * 0.6 s for the first two, 0.04-0.2 s from the 20th on; with one warm-up call the median came out
     * at 0.12 s, which overestimated every call of the GRPO example). They are timed after the models'
     * profiles for the same reason.
     */
    static final int EMPTY_WARM_UP = 30;
    /** ... and for at least this long: the JIT compiles the path in the background, on the same cores. */
    static final double EMPTY_WARM_UP_SECONDS = 10;
    /** The calibration's untimed rounds before the JITs' settling, and its timed rounds (the medians are kept). */
    static final int CALIBRATION_WARM_UP = 3;
    static final int CALIBRATION_ROUNDS = 9;

    /** Passes beyond this many tokens are not measured: the table scales the largest proportionally. */
    static final long MAX_PASS_TOKENS = 8192;

    /** What a profiling task needs: the model's config.json and the batch's shape. */
    record Job(String model, String device, String configJson, int promptLen, int genLen, long sequences)
            implements Serializable {
    }

    record Measured(String csv, double microBatchSeconds, double optimizerSecondsPerParam, int rows) implements Serializable {
    }

    private RunProfiler() {
    }

    /** The config.json of a role's model, as bytes (its digest keys the cache). */
    public static byte[] configJson(RunConfig config, String role) {
        Path json = new ModelSource(config.models().get(role).path(), 0).localPath().resolve("config.json");
        try {
            return Files.readAllBytes(json);
        } catch (IOException e) {
            throw new UncheckedIOException(json + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Profiles every distinct model of the run and stores the tables; returns the CSV paths under the output. */
    public static List<String> profile(RunConfig config, String output, BarrierCallRunner runner,
                                       ClusterInventory inventory, PrintStream progress) {
        ClusterSpec cluster = RunScenario.cluster(inventory, RunScenario.gpuPreset(config));
        String device = cluster.gpu().name();
        Workload w = RunScenario.workload(config);
        Map<String, String> distinct = distinctModels(config);
        // the models first: a run's calls come after its JVM has compiled Spark's scheduling path and the
        // engine's kernels, and the fixed costs timed below should be those of such a JVM
        // every device of the run profiles at once, and the first one's table is kept: a call's ranks run side
        // by side, and on a CPU executor the slots share one pool of cores (a slot alone would have them all:
        // on local[2] its passes ran twice as fast as a data-parallel call's); and every executor's JVM has
        // then compiled the engine before the run (profiled on the first executor alone, the second one's
        // ranks compiled it in the run's first iterations, on local-cluster[2,1,1024] the first 12 of the PPO
        // example took 1.5-2.5x the later ones)
        Map<String, Measured> measured = new LinkedHashMap<>();
        for (String role : distinct.values()) {
            ModelSpec spec = RunScenario.model(config, role);
            long start = System.nanoTime();
            Measured m = measureModel(config, runner, inventory, device, role);
            measured.put(role, m);
            progress.printf(Locale.ROOT, "profile: %s (%s) on %s: %d rows in %.1f s, micro-batch overhead %.4f s, "
                            + "optimizer step %.3g s per parameter%n", spec.name(), role, device, m.rows(),
                    (System.nanoTime() - start) / 1e9, m.microBatchSeconds(), m.optimizerSecondsPerParam());
        }
        CollectiveProfiler.Link[] links = CollectiveProfiler.measure(runner, inventory);
        progress.printf(Locale.ROOT, "profile: an all-reduce over two devices of an executor takes %s, between two "
                + "executors %s%n", link(links[0]), link(links[1]));
        double emptyCall = emptyCallSeconds(runner, inventory, Rows.NONE);
        Rows batch = Rows.of(w);
        double callOverhead = emptyCallSeconds(runner, inventory, batch);
        progress.printf(Locale.ROOT, "profile: an empty call over %d devices takes %.4f s, %.4f s carrying the batch's "
                        + "%d rows of %d + %d tokens in and %d floats each out (medians of %d)%n", inventory.size(), emptyCall,
                callOverhead, batch.rows(), w.promptLen(), w.genLen(), w.genLen(), EMPTY_CALLS);
        ReallocationProfiler.Rates realloc = new ReallocationProfiler(runner, inventory, cluster).measure(emptyCall);
        progress.printf(Locale.ROOT, "profile: a reallocation takes %.4f s fixed, then moves %s parameters/s inside an "
                        + "executor and %s between two%n", realloc.overheadSeconds(), rate(realloc.intraParamsPerSecond()),
                rate(realloc.interParamsPerSecond()));
        // the run's own kinds of calls, for real over the batch on every device, in rounds as an iteration runs
        // them (timed alone, a forward call on local-cluster[2,2,1024] took a third of what it took between the
        // others, as the run's ref_inf did)
        Map<String, Double> medians = roundMedians(runner, inventory, roundCalls(config, runner, inventory, batch),
                CALIBRATION_WARM_UP, CALIBRATION_ROUNDS);
        Map<String, String> csv = new LinkedHashMap<>();
        Map<String, RuntimeCosts> costs = new LinkedHashMap<>();
        for (Map.Entry<String, Measured> e : measured.entrySet()) {
            Measured m = e.getValue();
            csv.put(e.getKey(), m.csv());
            costs.put(e.getKey(), new RuntimeCosts(callOverhead, 0, m.microBatchSeconds(),
                    realloc.overheadSeconds(), realloc.intraParamsPerSecond(), realloc.interParamsPerSecond(),
                    costsLink(links[0]), costsLink(links[1]), m.optimizerSecondsPerParam(), 0, 0));
        }
        List<String> stored = calibrate(config, inventory, device, batch, csv, costs, callOverhead, medians, "profile",
                progress, c -> store(config, output, device, csv, c, true));
        int i = 0;
        for (String role : measured.keySet()) {
            progress.printf(Locale.ROOT, "profile: %s -> %s%n", RunScenario.model(config, role).name(), stored.get(i++));
        }
        return stored;
    }

    /**
     * The fixed costs the calibration rounds' {@code medians} give, over {@code costs} (by role, each
     * model's first) and the tables {@code csv} priced: the per-call overhead as a run's calls pay it (a
     * real forward call of the model of the run's first role with a language-model head, less its
     * passes' table price, never below 0; {@code callFallback} where the run has no such role), then,
     * against the baseline plan priced with those costs (stored through {@code sink}), a decoding step's
     * and a training step's extra seconds. Stores the result through {@code sink} and returns what it
     * returned; {@code prefix} starts the progress lines.
     */
    private static List<String> calibrate(RunConfig config, ClusterInventory inventory, String device, Rows batch,
                                          Map<String, String> csv, Map<String, RuntimeCosts> costs, double callFallback,
                                          Map<String, Double> medians, String prefix, PrintStream progress,
                                          Function<Map<String, RuntimeCosts>, List<String>> sink) {
        double callOverhead = callFallback;
        // the role the rounds' forward call ran under (roundCalls), and its model's table, which is keyed by
        // the model's first role: a value-head role (a critic of the actor's model) may come first
        String lmRole = languageModelRole(config);
        if (lmRole != null) {
            ModelSpec spec = RunScenario.model(config, lmRole);
            String tableRole = distinctModels(config).get(modelKey(config, lmRole));
            ProfileTable table = ProfileTable.empty().read(spec.name() + " profile",
                    Arrays.asList(csv.get(tableRole).split("\r?\n")));
            double call = medians.get(forwardCall(config, lmRole));
            double pass = ForwardCallProfiler.passSeconds(spec, device, table, batch, inventory.size());
            progress.printf(Locale.ROOT, "%s: a forward call of %s over the batch takes %.4f s, its passes %.4f s by "
                    + "the table: %.4f s a call beside them (median of %d rounds)%n", prefix, spec.name(), call, pass,
                    call - pass, CALIBRATION_ROUNDS);
            // not floored at an empty call's seconds: timed apart from the rounds, an empty call once took
            // 0.044 s where the whole forward call took 0.029 s, and every call's estimate rose with it
            callOverhead = Math.max(0, call - pass);
        }
        double overhead = callOverhead;
        // a decoding step's seconds beyond its layers are the table's head_decode rows, and a training step's
        // are its passes, sync and optimizer, until real generation and train calls say otherwise (below)
        costs.replaceAll((role, c) -> c.withCallOverhead(overhead).withDecodeStepOverhead(0).withTrainStep(0, 0));
        // stored before the generation and train calls: their estimates are priced from the stored tables and costs
        List<String> stored = sink.apply(costs);
        Map<String, Double> estimates = baselineEstimates(config, inventory, prefix, progress);
        double perStep = generationStepOverhead(config, batch, medians, estimates, prefix, progress);
        Map<String, double[]> perTrainStep = trainStepOverheads(config, inventory, csv.keySet(), medians, estimates,
                prefix, progress);
        if (perStep > 0 || !perTrainStep.isEmpty()) {
            costs.replaceAll((role, c) -> {
                double[] train = perTrainStep.getOrDefault(role, new double[2]);
                return c.withDecodeStepOverhead(perStep).withTrainStep(train[0], train[1]);
            });
            stored = sink.apply(costs);
        }
        return stored;
    }

    /** {@code role}'s model profiled on every device of the run at once ({@link #measure}); the first device's figures. */
    private static Measured measureModel(RunConfig config, BarrierCallRunner runner, ClusterInventory inventory,
                                         String device, String role) {
        ModelSpec spec = RunScenario.model(config, role);
        Workload w = RunScenario.workload(config);
        Job job = new Job(spec.name(), device, new String(configJson(config, role), StandardCharsets.UTF_8),
                w.promptLen(), w.genLen(), w.sequences());
        List<DeviceSlot> devices = inventory.devices();
        List<RankResult<Measured>> r = runner.run("profile", "spark-rlhf: profile " + spec.name() + " on " + device,
                devices, new ArrayList<>(Collections.nCopies(devices.size(), job)),
                (context, in) -> measure(context.backend(), in, context.communicator(), lockstep(context.communicator())));
        return r.get(0).value();
    }

    /**
     * Before a run that plans with tables from the cache (profiled by an earlier application): the
     * profile's real calls, untimed for the tables, so that the executors' JITs have compiled Spark's
     * call path and the engine's kernels before the first iteration, as after a profile. Without it a
     * run's first dozens of iterations ran 2-3x slower than after a profile (PPO's baseline plan on
     * local-cluster[2,2,1024], ref_inf: 0.48, 0.11, 0.09 ... 0.03-0.05 s at iteration 40, against 0.06,
     * 0.02 ... 0.01 s; the executors compiled 1000-4000 methods every 5 s to the end of the run). A
     * forward call of the first model with a language-model head, the run's generation call and each
     * of its train calls run over the batch on every device, in rounds, until the JITs settle
     * ({@link TimedCalls#medians}), as many rounds as the profile's calibration; their medians are printed
     * and give this application's fixed costs ({@link #recalibrate}). Before them, the profile's passes over
     * the first language model (its table discarded): with the engine's Vector API kernels, the calls
     * of a run warmed up by the calls alone took 2-2.5x what they took in an application that had
     * profiled (GRPO on local-cluster[2,2,1024]: 0.46-0.49 estimated/measured per iteration, against
     * 0.67 after a profile, and 0.76 with the kernels' scalar loops); why the passes' history matters to
     * the compiled kernels is not known. Between the passes and the rounds, empty calls carrying the
     * batch for {@value #EMPTY_WARM_UP_SECONDS} s, as the profile runs them before its calibration: without
     * them the rounds' forward call over the batch took 0.063-0.069 s where the profiling application's
     * took 0.024-0.038 s, and the run's calls stayed that slow (PPO's baseline on local-cluster[2,2,1024],
     * 0.467-0.493 s per iteration; with them 0.035 s and 0.334 s).
     */
    public static void warmUp(RunConfig config, String output, BarrierCallRunner runner, ClusterInventory inventory,
                              PrintStream progress) {
        long start = System.nanoTime();
        Rows batch = Rows.of(RunScenario.workload(config));
        String lmRole = languageModelRole(config);
        String device = RunScenario.cluster(inventory, RunScenario.gpuPreset(config)).gpu().name();
        if (lmRole != null) {
            measureModel(config, runner, inventory, device, lmRole);
            progress.printf(Locale.ROOT, "warm-up: the profile's passes of %s: %.1f s%n", RunScenario.model(config, lmRole)
                    .name(), (System.nanoTime() - start) / 1e9);
        }
        double empty = emptyCallSeconds(runner, inventory, batch);
        progress.printf(Locale.ROOT, "warm-up: an empty call over %d devices carrying the batch takes %.4f s%n",
                inventory.size(), empty);
        Map<String, Double> medians = roundMedians(runner, inventory, roundCalls(config, runner, inventory, batch),
                CALIBRATION_WARM_UP, CALIBRATION_ROUNDS);
        medians.forEach((call, s) -> progress.printf(Locale.ROOT, "warm-up: %s over the batch takes %.4f s%n", call, s));
        recalibrate(config, output, inventory, device, batch, medians, empty, progress);
        progress.printf(Locale.ROOT, "warm-up: %.1f s%n", (System.nanoTime() - start) / 1e9);
    }

    /**
     * The fixed costs again from the warm-up's rounds, over the tables found for every model (the
     * cache's, profiled by another application), written next to the run's output only: the speed of
     * these cores moves between applications, and in the second of a pair (PPO's baseline on
     * local-cluster[2,2,1024] from the cache) the warm-up's forward call took 0.066 s, the run's ref_inf
     * and critic_inf 0.060 and 0.057 s, and the cached calibration said 0.029 s. As in the profile, the
     * per-call overhead is the forward call's beyond its passes; without a language model it is
     * {@code emptyCall}, the warm-up's empty call carrying the batch, as the profile's is its own. Nothing
     * when a model has no table (the plan then keeps the roofline for it).
     */
    private static void recalibrate(RunConfig config, String output, ClusterInventory inventory, String device,
                                    Rows batch, Map<String, Double> medians, double emptyCall, PrintStream progress) {
        Map<String, String> csv = new LinkedHashMap<>();
        Map<String, RuntimeCosts> costs = new LinkedHashMap<>();
        for (String role : distinctModels(config).values()) {
            ModelSpec spec = RunScenario.model(config, role);
            var found = ProfileStore.find(output, spec.name(), device, configJson(config, role));
            if (found.isEmpty()) {
                progress.printf("warm-up: no profile table of %s on %s: its costs stay the planner's%n", spec.name(), device);
                return;
            }
            csv.put(role, String.join("\n", found.get().tableLines()));
            costs.put(role, found.get().costs());
        }
        List<String> stored = calibrate(config, inventory, device, batch, csv, costs, emptyCall, medians, "warm-up", progress,
                c -> store(config, output, device, csv, c, false));
        progress.printf("warm-up: this application's costs -> %s%n", String.join(", ", stored));
    }

    /**
     * The run's kinds of calls as the profile times them and the warm-up runs them, in an iteration's
     * order, by what they are: its first generation call, a forward call of its first model with a
     * language-model head ({@link #forwardCall}), and each of its train calls, over the batch on every
     * device.
     */
    private static Map<String, TimedCalls.Call> roundCalls(RunConfig config, BarrierCallRunner runner,
                                                           ClusterInventory inventory, Rows batch) {
        Map<String, TimedCalls.Call> calls = new LinkedHashMap<>();
        ModelCall gen = generateCall(config);
        if (gen != null) {
            String path = config.models().get(gen.role()).path();
            calls.put(generationCall(gen), GenerateCallProfiler.call(runner, inventory, config, path, padId(path),
                    gen.scoresSamples(), batch));
        }
        String lmRole = languageModelRole(config);
        if (lmRole != null) {
            String path = config.models().get(lmRole).path();
            calls.put(forwardCall(config, lmRole), ForwardCallProfiler.call(runner, inventory, path, padId(path), batch));
        }
        for (ModelCall train : RunScenario.graph(config).calls()) {
            if (train.kind() == CallKind.TRAIN) {
                String path = config.models().get(train.role()).path();
                calls.put(trainCall(train), TrainCallProfiler.call(runner, inventory, config, train, path, padId(path),
                        RunScenario.model(config, train.role()).valueHead(), batch));
            }
        }
        // the calls that calibrate each model's training step, again without data-parallel peers
        if (inventory.size() > 1) {
            for (String role : distinctModels(config).values()) {
                ModelCall train = calibratedTrainCall(config, role);
                if (train != null) {
                    String path = config.models().get(train.role()).path();
                    calls.put(trainAloneCall(train), TrainCallProfiler.alone(runner, inventory, config, train, path,
                            padId(path), RunScenario.model(config, train.role()).valueHead(), batch));
                }
            }
        }
        return calls;
    }

    /** {@link TimedCalls#medians} of {@code calls}, by what they are. */
    private static Map<String, Double> roundMedians(BarrierCallRunner runner, ClusterInventory inventory,
                                                    Map<String, TimedCalls.Call> calls, int warmUp, int repeats) {
        Map<String, Double> out = new LinkedHashMap<>();
        if (calls.isEmpty()) {
            return out;
        }
        double[] s = TimedCalls.medians(runner, inventory, new ArrayList<>(calls.values()), warmUp, repeats);
        int i = 0;
        for (String what : calls.keySet()) {
            out.put(what, s[i++]);
        }
        return out;
    }

    private static String generationCall(ModelCall gen) {
        return "a generation call like " + gen.name();
    }

    private static String forwardCall(RunConfig config, String role) {
        return "a forward call of " + RunScenario.model(config, role).name();
    }

    private static String trainCall(ModelCall train) {
        return "a train call like " + train.name();
    }

    private static String trainAloneCall(ModelCall train) {
        return "a train call like " + train.name() + " alone on each device";
    }

    /** The first role of each distinct model of the run ({@link #modelKey}), by key. */
    private static Map<String, String> distinctModels(RunConfig config) {
        Map<String, String> distinct = new LinkedHashMap<>();
        for (String role : RunScenario.graph(config).roles()) {
            distinct.putIfAbsent(modelKey(config, role), role);
        }
        return distinct;
    }

    /** The first of the run's train calls that trains {@code role}'s model (same name and config.json), or null. */
    private static ModelCall calibratedTrainCall(RunConfig config, String role) {
        String key = modelKey(config, role);
        return RunScenario.graph(config).calls().stream()
                .filter(c -> c.kind() == CallKind.TRAIN && modelKey(config, c.role()).equals(key)).findFirst().orElse(null);
    }

    /** The key of a role's model: two roles with the same name and config.json are profiled once. */
    private static String modelKey(RunConfig config, String role) {
        return RunScenario.model(config, role).name() + "\u0000" + new String(configJson(config, role), StandardCharsets.UTF_8);
    }

    /** The pad id of the checkpoint at {@code path}. */
    private static int padId(String path) {
        return SpecialTokens.read(new ModelSource(path, 0).localPath()).pad();
    }

    /** The run's first role whose model has a language-model head (not a value head), or null. */
    private static String languageModelRole(RunConfig config) {
        return RunScenario.graph(config).roles().stream().filter(r -> !RunScenario.model(config, r).valueHead())
                .findFirst().orElse(null);
    }

    /** The run's first generation call, or null. */
    private static ModelCall generateCall(RunConfig config) {
        return RunScenario.graph(config).calls().stream().filter(c -> c.kind() == CallKind.GENERATE).findFirst().orElse(null);
    }

    /**
     * The baseline plan's estimate of each call, priced from the stored tables and costs, which the
     * generation and train calibrations compare their calls with; empty (said on {@code progress} when
     * the baseline cannot run the batch) when the run plans without the tables.
     */
    private static Map<String, Double> baselineEstimates(RunConfig config, ClusterInventory inventory, String prefix,
                                                         PrintStream progress) {
        if (RunScenario.profileMode(config).equals("off")) {
            return Map.of();
        }
        try {
            return CallPlacements.baselineEstimates(config, inventory);
        } catch (IllegalArgumentException e) {
            progress.printf(Locale.ROOT, "%s: no calibration of the generation and train calls (%s)%n", prefix,
                    e.getMessage());
            return Map.of();
        }
    }

    /**
     * A training step's seconds beyond what the stored tables and costs give a train call, for each
     * of {@code roles}' models that one of the run's train calls trains ({@link #calibratedTrainCall}):
     * {fixed, per data-parallel peer}. The call as the calibration rounds ran it, data parallel on every
     * device as the baseline plan places it (its median), less the baseline plan's estimate of it, over
     * its steps (epochs x mini-batches) is a step's extra seconds with every other device a peer; the
     * same call alone on each device (over the rows a rank gets, all devices at once), less its
     * estimate, is the extra without peers: that is the fixed part, and the difference over the
     * peers the part per peer (in the PPO example on local-cluster[2,2,1024], train calls data parallel
     * over two devices took 0.76 of the estimate that charged them the extra measured over four).
     * Never below 0; without the calls alone (one device, or a model that does not fit one) all of it is
     * fixed; empty without {@link #baselineEstimates}.
     */
    private static Map<String, double[]> trainStepOverheads(RunConfig config, ClusterInventory inventory,
                                                            Collection<String> roles, Map<String, Double> medians,
                                                            Map<String, Double> estimates, String prefix,
                                                            PrintStream progress) {
        Map<String, double[]> out = new LinkedHashMap<>();
        for (String role : roles) {
            ModelCall train = calibratedTrainCall(config, role);
            Double estimated = train == null ? null : estimates.get(train.name());
            if (estimated == null) {
                continue;
            }
            double seconds = medians.get(trainCall(train));
            int steps = train.epochs() * train.trainSteps();
            double perStep = Math.max(0, (seconds - estimated) / steps);
            progress.printf(Locale.ROOT, "%s: %s over the batch takes %.4f s, estimated %.4f s: %.4f s more per "
                    + "step (%d steps; median of %d rounds)%n", prefix, trainCall(train), seconds, estimated, perStep, steps,
                    CALIBRATION_ROUNDS);
            Double alone = medians.get(trainAloneCall(train));
            int peers = inventory.size() - 1;
            double aloneEstimate = alone == null ? Double.NaN
                    : CallPlacements.aloneEstimate(config, inventory, train.name(), inventory.size());
            if (Double.isNaN(aloneEstimate)) {
                out.put(role, new double[]{perStep, 0});
                continue;
            }
            double fixed = Math.min(perStep, Math.max(0, (alone - aloneEstimate) / steps));
            double perPeer = (perStep - fixed) / peers;
            progress.printf(Locale.ROOT, "%s: %s takes %.4f s, estimated %.4f s: a step %.4f s more, and %.4f s per "
                    + "data-parallel peer (median of %d rounds)%n", prefix, trainAloneCall(train), alone, aloneEstimate, fixed,
                    perPeer, CALIBRATION_ROUNDS);
            out.put(role, new double[]{fixed, perPeer});
        }
        return out;
    }

    /** Each model's table and costs next to the run's output and, with {@code cache}, into the cache; the CSV paths. */
    private static List<String> store(RunConfig config, String output, String device, Map<String, String> csv,
                                      Map<String, RuntimeCosts> costs, boolean cache) {
        List<String> stored = new ArrayList<>();
        for (Map.Entry<String, String> e : csv.entrySet()) {
            String model = RunScenario.model(config, e.getKey()).name();
            RuntimeCosts c = costs.get(e.getKey());
            stored.add(cache ? ProfileStore.store(output, model, device, configJson(config, e.getKey()), e.getValue(), c)
                    : ProfileStore.storeInOutput(output, model, device, e.getValue(), c));
        }
        return stored;
    }

    /**
     * A decoding step's seconds beyond what the stored tables and costs give a generation call: the
     * run's first generation call as the calibration rounds ran it (its median; data parallel on every
     * device, as the baseline plan places it), less the baseline plan's estimate of it, over its
     * decoding steps (the estimator adds this much per step). 0 when the run generates nothing,
     * decodes no step after the prefill's token, has no {@link #baselineEstimates}, or the call came
     * out no slower than its estimate.
     */
    private static double generationStepOverhead(RunConfig config, Rows batch, Map<String, Double> medians,
                                                 Map<String, Double> estimates, String prefix, PrintStream progress) {
        ModelCall gen = generateCall(config);
        if (gen == null || batch.genLen() < 2) {
            return 0;
        }
        Double estimated = estimates.get(gen.name());
        if (estimated == null) {
            return 0;
        }
        double seconds = medians.get(generationCall(gen));
        int steps = batch.genLen() - 1;
        double perStep = Math.max(0, (seconds - estimated) / steps);
        progress.printf(Locale.ROOT, "%s: %s over the batch takes %.4f s, estimated %.4f s: %.4f s more per decoding "
                + "step (%d steps; median of %d rounds)%n", prefix, generationCall(gen), seconds, estimated, perStep, steps,
                CALIBRATION_ROUNDS);
        return perStep;
    }

    /** The devices of a profiling stage in step through its communicator (see {@link Lockstep}). */
    static Lockstep lockstep(Communicator comm) {
        if (comm.size() == 1) {
            return Lockstep.ALONE;
        }
        return new Lockstep() {
            @Override
            public void barrier() {
                comm.barrier();
            }

            @Override
            public int max(int value) {
                int m = value;
                for (byte[] b : comm.allGather(ByteBuffer.allocate(4).putInt(value).array())) {
                    m = Math.max(m, ByteBuffer.wrap(b).getInt());
                }
                return m;
            }
        };
    }

    static Measured measure(org.sparkrlhf.gpuexec.backend.Backend backend, Job job, Communicator group, Lockstep lockstep)
            throws IOException {
        ModelConfig config = ModelConfig.parse((ObjectNode) new ObjectMapper().readTree(job.configJson()),
                job.model() + "/config.json");
        ProfileGrid grid = ProfileGrid.forWorkload(job.promptLen(), job.genLen(), job.sequences(), MAX_PASS_TOKENS);
        // the engine keeps every model in fp32 (bf16 only as a GPU storage type of its kernels)
        EngineProfile p = new EngineProfiler(backend, config, DType.F32, REPEATS, lockstep).run(job.model(), job.device(), grid);
        String csv = ProfileCsv.format(p.rows());
        ProfileTable table = ProfileTable.empty().read(job.model() + " profile", Arrays.asList(csv.split("\r?\n")));
        double microBatch = MicroBatchProfiler.measure(backend, config, table, job.model(), job.device(),
                job.promptLen() + job.genLen(), job.sequences(), REPEATS);
        double optimizer = OptimizerStepProfiler.measure(backend, config, group, lockstep, REPEATS);
        return new Measured(csv, microBatch, optimizer, p.rows().size());
    }

    private static String link(CollectiveProfiler.Link l) {
        return Double.isNaN(l.latencySeconds()) ? "(no such pair)" : String.format(Locale.ROOT,
                "%.2e s + bytes / %.3g bytes/s", l.latencySeconds(), l.bytesPerSecond());
    }

    private static RuntimeCosts.Link costsLink(CollectiveProfiler.Link l) {
        return Double.isNaN(l.latencySeconds()) ? RuntimeCosts.Link.NOT_MEASURED
                : new RuntimeCosts.Link(l.latencySeconds(), l.bytesPerSecond());
    }

    private static String rate(double perSecond) {
        return Double.isNaN(perSecond) ? "(no such pair)" : String.format(Locale.ROOT, "%.3g", perSecond);
    }

    /**
     * One iteration's rows as a call carries them: each sequence's prompt and response tokens in, a
     * float per response token out (as ref_inf and the value calls return them).
     */
    record Rows(int rows, int promptLen, int genLen) {
        static final Rows NONE = new Rows(0, 0, 0);

        static Rows of(Workload w) {
            return new Rows((int) Math.min(Integer.MAX_VALUE, w.sequences()), w.promptLen(), w.genLen());
        }

        /** Rank {@code r}'s share of {@code devices}, cut as a call cuts its rows: prompts and responses of fixed tokens. */
        RowsIn share(int r, int devices) {
            int n = RowSplit.from(rows, 1, devices, r + 1) - RowSplit.from(rows, 1, devices, r);
            int[][] prompts = new int[n][promptLen];
            int[][] responses = new int[n][genLen];
            for (int i = 0; i < n; i++) {
                Arrays.fill(prompts[i], 3 + i % 100);
                Arrays.fill(responses[i], 5 + i % 100);
            }
            return new RowsIn(prompts, responses);
        }
    }

    record RowsIn(int[][] prompts, int[][] responses) implements Serializable {
    }

    /**
     * The median wall time of a call that does nothing with {@code rows} (carried in, a float per
     * response token carried back), on every device of the run, after {@link #EMPTY_WARM_UP}. A call
     * without rows is the stage and the ranks' meeting alone; a run's calls carry their rows (the
     * GRPO example's 256 rows of 8 tokens cost a call about 10 ms more on two slots), so the call
     * overhead the planner adds to every call is the one carrying the batch's rows.
     */
    static double emptyCallSeconds(BarrierCallRunner runner, ClusterInventory inventory, Rows rows) {
        // placed as a data-parallel call over every device, as the run's calls are (the same stage set-up)
        Placement all = Placement.dataParallel("empty", "", inventory.devices());
        List<RowsIn> inputs = new ArrayList<>(all.size());
        for (int r = 0; r < all.size(); r++) {
            inputs.add(rows.share(r, all.size()));
        }
        RankFunction<RowsIn, float[][]> fn = (context, in) -> {
            float[][] out = new float[in.responses().length][];
            for (int i = 0; i < out.length; i++) {
                out[i] = new float[in.responses()[i].length];
            }
            return out;
        };
        double[] s = new double[EMPTY_CALLS];
        long warm = System.nanoTime();
        for (int i = 0; i < EMPTY_WARM_UP || (System.nanoTime() - warm) / 1e9 < EMPTY_WARM_UP_SECONDS; i++) {
            runner.run("spark-rlhf: an empty call", all, inputs, fn);
        }
        TimedCalls.settle(runner, inventory, () -> runner.run("spark-rlhf: an empty call", all, inputs, fn));
        for (int i = 0; i < EMPTY_CALLS; i++) {
            long t0 = System.nanoTime();
            runner.run("spark-rlhf: an empty call", all, inputs, fn);
            s[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(s);
        return s[EMPTY_CALLS / 2];
    }
}
