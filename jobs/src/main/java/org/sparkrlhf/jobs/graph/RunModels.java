package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.ReleaseModelsCall;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.executor.ReallocationCall;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.ModelResidency;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The run's models by role, on the driver: where each trained model reloads from (its initial folder,
 * then its newest checkpoint), its version (optimizer steps applied), and where its copies are
 * ({@link ModelResidency}). A trained model lives on its train call's placement with its optimizer
 * state; a call elsewhere gets a copy moved by the planner's reallocation plan. Frozen models load
 * where their calls run. Calls on different threads use it, so it is synchronized; a reallocation
 * holds the lock while it runs.
 */
public final class RunModels {
    /** A role's fixed facts: its HF folder, its planner spec, and its optimizer settings when it is trained. */
    public record Model(String role, Path dir, ModelSpec spec, OptimizerConfig optimizer) {
        public boolean trained() {
            return optimizer != null;
        }
    }

    private final BarrierCallRunner runner;
    private final ModelResidency residency;
    private final Map<String, Model> models = new LinkedHashMap<>();
    private final Map<String, ModelSource> sources = new LinkedHashMap<>();
    private final Map<String, Long> versions = new LinkedHashMap<>();
    private final List<Map.Entry<String, ModelResidency.Copy>> stale = new ArrayList<>();

    public RunModels(BarrierCallRunner runner, ModelResidency residency) {
        this.runner = runner;
        this.residency = residency;
    }

    /** Adds a role, reloadable from {@code source} (its folder, or a checkpoint of it). */
    public synchronized void add(Model model, ModelSource source) {
        models.put(model.role(), model);
        sources.put(model.role(), source);
        versions.put(model.role(), source.version());
    }

    public synchronized Model model(String role) {
        Model m = models.get(role);
        if (m == null) {
            throw new IllegalArgumentException("the run has no model '" + role + "' (it has " + models.keySet() + ")");
        }
        return m;
    }

    public synchronized List<Model> trainedModels() {
        return models.values().stream().filter(Model::trained).toList();
    }

    public synchronized ModelSource source(String role) {
        model(role);
        return sources.get(role);
    }

    public synchronized long version(String role) {
        model(role);
        return versions.get(role);
    }

    /**
     * Before a call on {@code role} at {@code at}: a trained model's current version is moved there
     * when another placement holds it (with its optimizer when the call trains it); a frozen model
     * loads in the call. Returns the seconds a reallocation took (0 when none ran).
     */
    public synchronized double prepare(String role, Placement at, boolean forTraining) {
        Model m = model(role);
        if (!m.trained()) {
            return 0;
        }
        ModelResidency.Moved moved = residency.prepare(role, versions.get(role), at, m.spec(), sources.get(role),
                forTraining ? ReallocationCall.Build.TRAINED_MODEL : ReallocationCall.Build.MODEL,
                forTraining ? m.optimizer() : null);
        return moved == null ? 0 : moved.seconds();
    }

    /**
     * The devices a call on {@code role} at {@code at} uses: its placement's, and, when {@link #prepare}
     * will reallocate the model there, the devices that send it.
     */
    public synchronized java.util.Set<Integer> devices(String role, Placement at, boolean forTraining) {
        Model m = model(role);
        if (!m.trained()) {
            return java.util.Set.copyOf(java.util.Arrays.stream(at.deviceIndices()).boxed().toList());
        }
        return residency.devicesFor(role, versions.get(role), at, m.spec(), sources.get(role),
                forTraining ? ReallocationCall.Build.TRAINED_MODEL : ReallocationCall.Build.MODEL);
    }

    /** After a call that used {@code role} on {@code at}: its ranks hold the current version. */
    public synchronized void holds(String role, Placement at) {
        residency.holds(role, versions.get(role), at);
    }

    /** After a train call: {@code home} holds {@code version}; the older copies are released at the end of the run. */
    public synchronized void trained(String role, long version, Placement home) {
        for (ModelResidency.Copy c : residency.copies(role)) {
            stale.add(Map.entry(role, c));
        }
        residency.trained(role, version, home);
        versions.put(role, version);
    }

    /** After a checkpoint: a lost executor reloads {@code role} from there. */
    public synchronized void checkpointed(String role, ModelSource source) {
        sources.put(role, source);
    }

    /** A placement holding the whole of {@code role}'s current version (gathered there when sharded). */
    public synchronized Placement wholeCopy(String role, Placement home, boolean withOptimizer) {
        Model m = model(role);
        return residency.wholeCopy(role, versions.get(role), home, m.spec(), sources.get(role), withOptimizer);
    }

    /** Drops every copy of every model, current and stale, from the executors' stores. */
    public synchronized void releaseAll() {
        List<Map.Entry<String, ModelResidency.Copy>> all = new ArrayList<>(stale);
        for (String role : models.keySet()) {
            for (ModelResidency.Copy c : residency.copies(role)) {
                all.add(Map.entry(role, c));
            }
            residency.forget(role);
        }
        for (Map.Entry<String, ModelResidency.Copy> e : all) {
            ModelResidency.Copy c = e.getValue();
            List<ReleaseModelsCall.Request> release = new ArrayList<>();
            for (int r = 0; r < c.placement().size(); r++) {
                release.add(new ReleaseModelsCall.Request(List.of(e.getKey()), List.of(c.version()), c.placement().key()));
            }
            runner.run("release", "release " + e.getKey() + " v" + c.version() + " from " + c.placement().key(),
                    c.placement().devices(), release, new ReleaseModelsCall());
        }
        stale.clear();
    }
}
