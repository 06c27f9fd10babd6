package org.sparkrlhf.jobs.runtime;

import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.ReallocationCall;
import org.sparkrlhf.jobs.executor.ShardPiece;
import org.sparkrlhf.jobs.executor.ShardTensors;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.planner.realloc.ModelParameters;
import org.sparkrlhf.planner.realloc.Param;
import org.sparkrlhf.planner.realloc.ReallocationPlan;
import org.sparkrlhf.planner.realloc.ReallocationPlanner;
import org.sparkrlhf.planner.realloc.ShardLayout;
import org.sparkrlhf.planner.realloc.Slice;
import org.sparkrlhf.planner.realloc.Transfer;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The driver's view of where each model's parameters are: for every role, the placements whose
 * ranks hold it in their executors' stores, at which version. Before a call on a model whose
 * layout or devices differ from every place the model is, {@link #prepare} runs the planner's
 * reallocation plan as a barrier stage over the destination devices and the source devices that send (see
 * {@link ReallocationCall}); when the model is nowhere (the first call, or a version no executor
 * holds), the call's ranks load their slices from the model's source (the last checkpoint).
 *
 * <p>A trained model's home (its train call's placement) keeps the optimizer state; the other
 * calls get copies without one, made again after every training step. One instance per run, used
 * from the driver thread that runs the loop.
 */
public final class ModelResidency {
    /** A copy of a model: where it is and its version. */
    public record Copy(Placement placement, long version) {
    }

    /** One reallocation as it ran: from where, to where, and the bytes the plan moved between devices. */
    public record Moved(String role, long version, Placement from, Placement to, long elementsBetweenDevices,
                        int transfers, double seconds) {
    }

    private final BarrierCallRunner runner;
    private final ClusterSpec cluster;
    private final Map<String, Map<String, Copy>> copies = new LinkedHashMap<>();
    private final List<Moved> log = new ArrayList<>();
    private final Map<String, Set<Integer>> sendersByMove = new HashMap<>();

    public ModelResidency(BarrierCallRunner runner, ClusterSpec cluster) {
        this.runner = runner;
        this.cluster = cluster;
    }

    /** Where {@code role} is now. */
    public List<Copy> copies(String role) {
        return List.copyOf(copies.getOrDefault(role, Map.of()).values());
    }

    /** The reallocations run so far, in order. */
    public List<Moved> moves() {
        return List.copyOf(log);
    }

    /**
     * Makes {@code role} at {@code version} present on {@code target} before a call there: nothing when
     * it already is; a reallocation from a copy at that version when there is one; else nothing (the
     * call's ranks load from the source). {@code build} says what the destination ranks keep; a copy
     * with an optimizer is only moved at version 0 (a fresh optimizer state is only right there); at a
     * trained version its ranks load it from the source (a checkpoint, with the optimizer state).
     * Returns the reallocation run, or null.
     */
    public Moved prepare(String role, long version, Placement target, ModelSpec spec, ModelSource source,
                         ReallocationCall.Build build, OptimizerConfig optimizer) {
        Copy from = sourceFor(role, version, target, build, source);
        if (from == null) {
            return null;
        }
        Moved moved;
        try {
            moved = reallocate(role, version, from.placement(), target, spec, source, build, optimizer);
        } catch (RuntimeException e) {
            if (source == null || source.version() != version) {
                throw new IllegalStateException("cannot move " + role + " v" + version + " from " + from.placement().key()
                        + " to " + target.key() + " (lost executor?), and its source " + (source == null ? "(none)"
                        : source.path() + " holds version " + source.version()) + ": " + e.getMessage(), e);
            }
            // An executor that held a copy is gone: the call's ranks load their slices from the source.
            copies.get(role).clear();
            return null;
        }
        copies.get(role).put(target.key(), new Copy(target, version));
        return moved;
    }

    /**
     * The copy {@link #prepare} would move to {@code target}, or null when it would move none (the
     * target holds the version, or its ranks load it from the source).
     */
    private Copy sourceFor(String role, long version, Placement target, ReallocationCall.Build build,
                           ModelSource source) {
        Map<String, Copy> mine = copies.computeIfAbsent(role, r -> new LinkedHashMap<>());
        Copy here = mine.get(target.key());
        if (here != null && here.version() == version) {
            return null;
        }
        Copy from = null;
        for (Copy c : mine.values()) {
            if (c.version() == version) {
                from = c;
                break;
            }
        }
        if (from == null) {
            return null;
        }
        if (build == ReallocationCall.Build.TRAINED_MODEL && version != 0) {
            if (source != null && source.version() == version) {
                // a resumed run: the checkpoint holds this version with its optimizer state, which the
                // call's ranks load, cut to their slices
                return null;
            }
            throw new IllegalStateException(role + " version " + version + " would get a fresh optimizer state on "
                    + target + "; a trained model's optimizer stays on its home placement");
        }
        return from;
    }

    /**
     * The devices a call on {@code target} uses, its reallocation included: the target's, and the
     * devices of the copy {@link #prepare} would move from that send parameters. The call scheduler
     * holds them all, as the planner's simulator does.
     */
    public Set<Integer> devicesFor(String role, long version, Placement target, ModelSpec spec, ModelSource source,
                                   ReallocationCall.Build build) {
        Set<Integer> out = new TreeSet<>();
        for (int d : target.deviceIndices()) {
            out.add(d);
        }
        Copy from = sourceFor(role, version, target, build, source);
        if (from != null) {
            out.addAll(senders(spec, from.placement(), target));
        }
        return out;
    }

    /** The devices of {@code from} that send parameters to {@code to} in the planner's reallocation plan. */
    private Set<Integer> senders(ModelSpec spec, Placement from, Placement to) {
        return sendersByMove.computeIfAbsent(spec.name() + "|" + from.key() + "|" + to.key(), k -> {
            Set<Integer> out = new TreeSet<>();
            for (Transfer t : new ReallocationPlanner(cluster).plan(spec, from.mesh(), from.strategy(), to.mesh(),
                    to.strategy(), 4).transfers()) {
                if (!t.local()) {
                    out.add(t.srcGpu());
                }
            }
            return Set.copyOf(out);
        });
    }

    /** Records that {@code placement}'s ranks hold {@code role} at {@code version} (after a call loaded it). */
    public void holds(String role, long version, Placement placement) {
        copies.computeIfAbsent(role, r -> new LinkedHashMap<>()).put(placement.key(), new Copy(placement, version));
    }

    /** After a train step: only {@code home} holds the new version; older copies are stale. */
    public void trained(String role, long version, Placement home) {
        Map<String, Copy> mine = copies.computeIfAbsent(role, r -> new LinkedHashMap<>());
        mine.clear();
        mine.put(home.key(), new Copy(home, version));
    }

    /** Forgets a role's copies (after the run releases them, or when an executor was lost). */
    public void forget(String role) {
        copies.remove(role);
    }

    /**
     * A placement holding {@code role} at {@code version} whole on one rank (tp = pp = 1), to save a
     * full HF checkpoint from, with its optimizer state: {@code home} itself when it is data parallel
     * (its replicas are whole, with their AdamW), else a single-device copy reallocated onto home's
     * first device, beside which the AdamW moments of home's shards are gathered by the same plan
     * (see {@link #gatherMoments}), for {@link org.sparkrlhf.jobs.calls.SaveModelCall} to write.
     */
    public Placement wholeCopy(String role, long version, Placement home, ModelSpec spec, ModelSource source) {
        return wholeCopy(role, version, home, spec, source, true);
    }

    /**
     * {@link #wholeCopy(String, long, Placement, ModelSpec, ModelSource)}, gathering the optimizer's
     * moments only {@code withOptimizer} (a final model needs the weights alone).
     */
    public Placement wholeCopy(String role, long version, Placement home, ModelSpec spec, ModelSource source,
                               boolean withOptimizer) {
        if (home.tp() == 1 && home.pp() == 1) {
            return home;
        }
        Placement single = new Placement(role + "_whole", role, List.of(home.devices().get(0)), 1, 1, 1, 1);
        prepare(role, version, single, spec, source, ReallocationCall.Build.MODEL, null);
        if (withOptimizer) {
            gatherMoments(role, version, home, single, spec, source);
        }
        return single;
    }

    /**
     * Moves the AdamW first and second moments of {@code role} at {@code version} from its trained
     * copy on {@code home} to {@code to}, as tensors ({@link ReallocationCall.Build#TENSORS}) kept under
     * the layout keys of {@link ShardTensors.View}: the moments have the weights' shapes and cut, so
     * the planner's reallocation plan of the weights moves them. They are gathered afresh for every
     * save, not tracked as copies: the save consumes them (see SaveModelCall). {@code to} must hold
     * home's first device, whose shard gives the step count.
     */
    public void gatherMoments(String role, long version, Placement home, Placement to, ModelSpec spec,
                              ModelSource source) {
        if (to.rankOf(home.devices().get(0).index()) < 0) {
            throw new IllegalArgumentException(role + ": moments gathered onto " + to.key() + " must include home "
                    + home.key() + "'s first device, whose optimizer gives the step count");
        }
        for (ShardTensors.View view : List.of(ShardTensors.View.EXP_AVG, ShardTensors.View.EXP_AVG_SQ)) {
            reallocate(role, version, home, to, spec, source, ReallocationCall.Build.TENSORS, null, view);
        }
    }

    /** Runs the reallocation stage of {@code role}'s weights from {@code from} to {@code to}. */
    public Moved reallocate(String role, long version, Placement from, Placement to, ModelSpec spec, ModelSource source,
                            ReallocationCall.Build build, OptimizerConfig optimizer) {
        return reallocate(role, version, from, to, spec, source, build, optimizer, ShardTensors.View.WEIGHTS);
    }

    /**
     * Runs the reallocation stage of {@code view} of {@code role} from {@code from} to {@code to}: the
     * weights, or a trained copy's AdamW moment (to tensors, kept under {@code view}'s layout key).
     */
    public Moved reallocate(String role, long version, Placement from, Placement to, ModelSpec spec, ModelSource source,
                            ReallocationCall.Build build, OptimizerConfig optimizer, ShardTensors.View view) {
        long start = System.nanoTime();
        if (build != ReallocationCall.Build.TENSORS) {
            checkSameParameters(role, spec, source);
        }
        ReallocationPlan plan = new ReallocationPlanner(cluster).plan(spec, from.mesh(), from.strategy(), to.mesh(),
                to.strategy(), 4);
        ShardLayout src = new ShardLayout(spec, from.mesh(), from.strategy());
        ShardLayout dst = new ShardLayout(spec, to.mesh(), to.strategy());
        Map<String, Param> params = new LinkedHashMap<>();
        for (Param p : ModelParameters.all(spec)) {
            params.put(p.name(), p);
        }
        // the stage: the destination's devices and the source's that send (a source device whose pieces
        // nobody needs stays free for other calls, as the call scheduler and the simulator assume)
        Set<Integer> senders = new HashSet<>();
        for (Transfer t : plan.transfers()) {
            if (!t.local()) {
                senders.add(t.srcGpu());
            }
        }
        TreeMap<Integer, DeviceSlot> stage = new TreeMap<>();
        for (DeviceSlot d : from.devices()) {
            if (senders.contains(d.index())) {
                stage.put(d.index(), d);
            }
        }
        for (DeviceSlot d : to.devices()) {
            stage.put(d.index(), d);
        }
        List<DeviceSlot> devices = new ArrayList<>(stage.values());
        int[] stageDevices = devices.stream().mapToInt(DeviceSlot::index).toArray();
        String[] stageExecutors = devices.stream().map(DeviceSlot::executorId).toArray(String[]::new);
        Map<Integer, List<ShardPiece>> piecesOf = new LinkedHashMap<>();
        for (int d : stageDevices) {
            piecesOf.put(d, new ArrayList<>());
        }
        long between = 0;
        for (Transfer t : plan.transfers()) {
            Param p = params.get(t.param());
            Slice s = src.slice(p, t.srcGpu());
            Slice w = dst.slice(p, t.dstGpu());
            ShardPiece piece = new ShardPiece(t.param(), t.srcGpu(), t.dstGpu(), Math.toIntExact(t.rows()),
                    Math.toIntExact(t.cols()), Math.toIntExact(t.srcRow()), Math.toIntExact(t.srcCol()),
                    Math.toIntExact(s.cols()), Math.toIntExact(t.dstRow()), Math.toIntExact(t.dstCol()),
                    Math.toIntExact(w.cols()));
            piecesOf.get(t.srcGpu()).add(piece);
            if (!t.local()) {
                piecesOf.get(t.dstGpu()).add(piece);
                between += (long) piece.elements();
            }
        }
        List<ReallocationCall.Request> requests = new ArrayList<>();
        for (int d : stageDevices) {
            int srcRank = from.rankOf(d);
            int dstRank = to.rankOf(d);
            List<String> names = new ArrayList<>();
            List<int[]> shapes = new ArrayList<>();
            if (dstRank >= 0) {
                for (Param p : params.values()) {
                    Slice w = dst.slice(p, d);
                    if (w != null) {
                        names.add(p.name());
                        shapes.add(new int[]{Math.toIntExact(w.rows()), Math.toIntExact(w.cols())});
                    }
                }
            }
            requests.add(new ReallocationCall.Request(role, stageDevices, stageExecutors,
                    srcRank < 0 ? null : new ModelStore.Key(role, version, from.key(), srcRank),
                    dstRank < 0 ? null : new ModelStore.Key(role, version, view.layoutKey(to.key()), dstRank),
                    names, shapes.toArray(new int[0][]), piecesOf.get(d), build, source, optimizer, to,
                    spec.valueHead(), view));
        }
        String what = view == ShardTensors.View.WEIGHTS ? role : role + " " + view;
        runner.run("realloc_" + role, "reallocate " + what + " v" + version + ": " + from.key() + " -> " + to.key()
                + " (before " + to.call() + ")", devices, requests, new ReallocationCall());
        Moved moved = new Moved(role, version, from, to, between, plan.transfers().size(),
                (System.nanoTime() - start) / 1e9);
        log.add(moved);
        return moved;
    }

    /** The planner's parameter list must be the engine's, name for name, for the slices to build a model. */
    private static void checkSameParameters(String role, ModelSpec spec, ModelSource source) {
        ModelConfig config = ModelConfig.read(source.localPath().resolve("config.json"));
        if (spec.valueHead() && config.head() != ModelConfig.Head.SCORE) {
            // a critic started from a causal LM carries a value head in place of its LM head (Critics)
            config = config.withHead(ModelConfig.Head.SCORE);
        }
        Set<String> engine = new HashSet<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) {
            engine.add(s.name());
        }
        Set<String> planner = new HashSet<>();
        for (Param p : ModelParameters.all(spec)) {
            planner.add(p.name());
        }
        if (!engine.equals(planner)) {
            Set<String> onlyEngine = new HashSet<>(engine);
            onlyEngine.removeAll(planner);
            Set<String> onlyPlanner = new HashSet<>(planner);
            onlyPlanner.removeAll(engine);
            throw new UnsupportedOperationException(role + " (" + source.path() + "): the planner's reallocation does not "
                    + "know the parameters " + onlyEngine + (onlyPlanner.isEmpty() ? "" : " and expects " + onlyPlanner)
                    + "; its layouts cannot move this model");
        }
    }
}
