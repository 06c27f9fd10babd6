package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.ModelCall;
import org.sparkrlhf.planner.mesh.DeviceMesh;
import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ClusterSpec;
import org.sparkrlhf.planner.spec.ModelSpec;
import org.sparkrlhf.planner.spec.Speculation;
import org.sparkrlhf.planner.spec.Workload;

import java.util.ArrayList;
import java.util.List;

/**
 * Time and memory of a model function call on a mesh with a parameter layout. The micro-batch count
 * (and, for training, activation recomputation) is chosen with the placement: for each layout the
 * estimator returns the variants that fit in memory on their own and are not beaten in both time and
 * memory by another (fastest first), so that a plan where several models share devices can still fit.
 * <ul>
 *   <li>TRAIN: {@code trainSteps} optimizer steps, {@code epochs} times; each runs a 1F1B pipeline over the replica's
 *   micro-batches ({@code (mb + pp - 1)} slots of forward + backward of the slowest stage), with two
 *   tensor-parallel all-reduces per layer and pass, activations sent between stages, then a
 *   reduce-scatter of fp32 gradients and an all-gather of bf16 weights over the data-parallel group
 *   (distributed optimizer) and the Adam update, plus the measured fixed seconds of a step and its measured
 *   seconds per other rank of the data-parallel group (both 0 for ReaL's engine).</li>
 *   <li>INFERENCE: a forward pipeline over the replica's micro-batches.</li>
 *   <li>GENERATE: a prefill pass over the prompts (which samples the first new token), then one step
 *   per further new token; with pp stages the
 *   batch is cut into pp micro-batches that keep every stage busy; each step reads the stage's weights
 *   and KV cache (memory-bound at small batches) and pays fixed decoding overheads; a call that
 *   writes its samples' logprobs (GRPO's and PPO's old logprobs) then runs a forward over prompt +
 *   response in its micro-batches, as INFERENCE does. With
 *   {@link Speculation} (S3D), a step is a draft forward through (L - skipped) / L of the layers
 *   and a verification through all of them, both over k + 1 rows per sequence, and gains the
 *   expected E tokens of {@link Speculation#expectedTokensPerStep()}; only data-parallel layouts.</li>
 *   <li>DRAFT_TRAIN (S3D's draft, gpu-exec's {@code S3dLoss}): {@code trainSteps} steps, each on
 *   {@link Speculation#EXAMPLES_PER_STEP} examples per replica (fewer when its rows are fewer), each a
 *   row of the sequence length (padded to the longest example) ending in k mask tokens. A step is
 *   a forward through every layer (the contexts go through all of them; only the last context token
 *   and the masks skip [skipFrom, skipTo)) and a backward of input gradients alone (the weights are
 *   frozen: half a training backward's work, which computes weight gradients as well) down to the
 *   mask embeddings, the head forward and its input-gradient backward over the k mask rows per
 *   example, an all-reduce of the [k, hidden] fp32 gradient over the replicas and the AdamW
 *   update of the mask embeddings; only data-parallel layouts (the engine trains the draft on a
 *   whole model).</li>
 *   <li>ZeRO-3: parameters are all-gathered for every pass (prefetch overlaps it with compute) and
 *   gradients reduce-scattered; generation gathers the whole model once when it fits (DeepSpeed-Chat's
 *   hybrid engine), else layer by layer at every decoding step.</li>
 * </ul>
 */
public final class CallCostModel {
    private final ClusterSpec cluster;
    private final CostConstants k;
    private final ComputeModel compute;
    private final CommModel comm;
    private final double memoryLimit;

    public CallCostModel(ClusterSpec cluster, CostConstants k, ProfileTable profile) {
        this.cluster = cluster;
        this.k = k;
        this.compute = new ComputeModel(cluster.gpu(), k, profile);
        this.comm = new CommModel(cluster, k);
        this.memoryLimit = cluster.gpu().memoryBytes() * k.memoryUsable();
    }

    public ClusterSpec cluster() {
        return cluster;
    }

    public CostConstants constants() {
        return k;
    }

    public CommModel comm() {
        return comm;
    }

    public ComputeModel compute() {
        return compute;
    }

    /** Bytes a plan may use on one device. */
    public double memoryLimit() {
        return memoryLimit;
    }

    /**
     * Variants of the call on this layout that fit on their own (fastest first), or an empty list.
     * {@code trainableRole}: whether the call's role is trained in the graph (its home state is then the
     * training state). {@code home}: whether this call's layout is where the role's parameters live.
     */
    public List<CallEstimate> estimate(ModelCall call, ModelSpec model, Workload w, boolean trainableRole,
                                       DeviceMesh mesh, ParallelStrategy layout, boolean home) {
        boolean crossDp = layout.dp() * layout.tp() > cluster.gpusPerNode();
        boolean crossPp = mesh.nodes(cluster.gpusPerNode()) > 1;
        double homeState = trainableRole ? MemoryModel.trainStateBytes(model, layout) : MemoryModel.weightBytes(model, layout);
        double copy = call.kind() == CallKind.TRAIN ? MemoryModel.trainStateBytes(model, layout)
                : MemoryModel.weightBytes(model, layout);
        double resident = home ? homeState : copy;
        double budget = memoryLimit - resident;
        List<CallEstimate> fits = new ArrayList<>();
        if (budget <= 0) {
            return fits;
        }
        double seqs = w.sequences();
        switch (call.kind()) {
            case TRAIN -> {
                double seqsPerReplica = seqs / call.trainSteps() / layout.dp();
                if (seqsPerReplica < 1) {
                    return fits;
                }
                for (int mb : microBatchChoices(layout.pp(), seqsPerReplica)) {
                    ParallelStrategy s = layout.withMicroBatches(mb);
                    double tokensMb = seqsPerReplica * w.seqLen() / mb;
                    for (boolean recompute : new boolean[]{false, true}) {
                        double act = MemoryModel.trainActivationBytes(model, s, tokensMb, recompute);
                        if (act <= budget) {
                            double t = trainSeconds(call, model, w, s, tokensMb, recompute, crossDp, crossPp, mesh);
                            fits.add(new CallEstimate(t, mb, recompute, act, copy, homeState));
                            break;
                        }
                    }
                }
            }
            case INFERENCE -> {
                double seqsPerReplica = seqs / layout.dp();
                if (seqsPerReplica < 1) {
                    return fits;
                }
                for (int mb : microBatchChoices(layout.pp(), seqsPerReplica)) {
                    ParallelStrategy s = layout.withMicroBatches(mb);
                    double tokensMb = seqsPerReplica * w.seqLen() / mb;
                    double act = MemoryModel.inferenceActivationBytes(model, s, tokensMb, w.seqLen());
                    if (act <= budget) {
                        double t = inferenceSeconds(model, w.seqLen(), s, tokensMb, crossPp, mesh);
                        fits.add(new CallEstimate(t, mb, false, act, copy, homeState));
                    }
                }
            }
            case GENERATE -> {
                double seqsPerReplica = seqs / layout.dp();
                if (seqsPerReplica < 1) {
                    return fits;
                }
                if (w.speculation() != null && (layout.tp() > 1 || layout.pp() > 1)) {
                    return fits; // the engine's S3D decoding runs on whole models (data-parallel layouts) only
                }
                int mb = (int) Math.min(layout.pp(), Math.floor(seqsPerReplica));
                ParallelStrategy s = layout.withMicroBatches(Math.max(1, mb));
                double act = MemoryModel.generateActivationBytes(model, s, seqsPerReplica, w.promptLen(), w.seqLen());
                act = Math.max(act, scoringActivationBytes(call, model, w, s, seqsPerReplica));
                double scoring = scoringSeconds(call, model, w, s, seqsPerReplica, crossPp, mesh);
                if (layout.zero3()) {
                    double full = 2.0 * model.totalParams();
                    if (act + full <= budget) {
                        double t = generateSeconds(model, w, s, seqsPerReplica, crossPp, mesh, GatherMode.ONCE) + scoring;
                        fits.add(new CallEstimate(t, s.microBatches(), false, act + full, copy, homeState));
                    }
                    if (act <= budget) {
                        double t = generateSeconds(model, w, s, seqsPerReplica, crossPp, mesh, GatherMode.PER_STEP) + scoring;
                        fits.add(new CallEstimate(t, s.microBatches(), false, act, copy, homeState));
                    }
                } else if (act <= budget) {
                    double t = generateSeconds(model, w, s, seqsPerReplica, crossPp, mesh, GatherMode.NONE) + scoring;
                    fits.add(new CallEstimate(t, s.microBatches(), false, act, copy, homeState));
                }
            }
            case DRAFT_TRAIN -> {
                if (layout.tp() == 1 && layout.pp() == 1 && !layout.zero3() && seqs / layout.dp() >= 1) {
                    CallEstimate e = draftTrainEstimate(call, model, w, layout, crossDp, copy, homeState);
                    if (e.transientBytes() <= budget) {
                        fits.add(e);
                    }
                }
            }
        }
        return paretoFront(fits);
    }

    /**
     * The estimate of a call with a given strategy, micro-batches included (for a plan read from a file):
     * recomputation (training) or layer-by-layer gathering (ZeRO-3 generation) only when the faster way
     * does not fit. The simulator reports a plan that does not fit. Throws when the batch cannot be split
     * that way.
     */
    public CallEstimate estimateFixed(ModelCall call, ModelSpec model, Workload w, boolean trainableRole,
                                      DeviceMesh mesh, ParallelStrategy s, boolean home) {
        boolean crossDp = s.dp() * s.tp() > cluster.gpusPerNode();
        boolean crossPp = mesh.nodes(cluster.gpusPerNode()) > 1;
        double homeState = trainableRole ? MemoryModel.trainStateBytes(model, s) : MemoryModel.weightBytes(model, s);
        double copy = call.kind() == CallKind.TRAIN ? MemoryModel.trainStateBytes(model, s)
                : MemoryModel.weightBytes(model, s);
        double budget = memoryLimit - (home ? homeState : copy);
        double seqsPerReplica = (double) w.sequences() / (call.kind() == CallKind.TRAIN ? call.trainSteps() : 1) / s.dp();
        if (seqsPerReplica < s.microBatches()) {
            throw new IllegalArgumentException("call " + call.name() + ": " + s.dp() + " replicas x " + s.microBatches()
                    + " micro-batches need more sequences than the " + w.sequences() + " of a batch"
                    + (call.kind() == CallKind.TRAIN ? " split into " + call.trainSteps() + " steps" : ""));
        }
        double tokensMb = seqsPerReplica * w.seqLen() / s.microBatches();
        switch (call.kind()) {
            case TRAIN -> {
                double act = MemoryModel.trainActivationBytes(model, s, tokensMb, false);
                boolean recompute = act > budget;
                if (recompute) {
                    act = MemoryModel.trainActivationBytes(model, s, tokensMb, true);
                }
                return new CallEstimate(trainSeconds(call, model, w, s, tokensMb, recompute, crossDp, crossPp, mesh),
                        s.microBatches(), recompute, act, copy, homeState);
            }
            case INFERENCE -> {
                double act = MemoryModel.inferenceActivationBytes(model, s, tokensMb, w.seqLen());
                return new CallEstimate(inferenceSeconds(model, w.seqLen(), s, tokensMb, crossPp, mesh), s.microBatches(),
                        false, act, copy, homeState);
            }
            case DRAFT_TRAIN -> {
                if (s.tp() > 1 || s.pp() > 1 || s.zero3() || s.microBatches() != 1) {
                    throw new IllegalArgumentException("call " + call.name() + ": the engine trains a speculative draft on "
                            + "a whole model per rank in one pass: a dp x 1 x 1 layout of 1 micro-batch, not " + s);
                }
                return draftTrainEstimate(call, model, w, s, crossDp, copy, homeState);
            }
            default -> {
                double act = Math.max(MemoryModel.generateActivationBytes(model, s, seqsPerReplica, w.promptLen(), w.seqLen()),
                        scoringActivationBytes(call, model, w, s, seqsPerReplica));
                GatherMode mode = GatherMode.NONE;
                if (s.zero3()) {
                    double full = 2.0 * model.totalParams();
                    mode = act + full <= budget ? GatherMode.ONCE : GatherMode.PER_STEP;
                    if (mode == GatherMode.ONCE) {
                        act += full;
                    }
                }
                return new CallEstimate(generateSeconds(model, w, s, seqsPerReplica, crossPp, mesh, mode)
                        + scoringSeconds(call, model, w, s, seqsPerReplica, crossPp, mesh),
                        s.microBatches(), false, act, copy, homeState);
            }
        }
    }

    /**
     * The variants no other variant beats in both time and memory, fastest first (so memory decreases
     * along the list): the fastest, the one with the least memory, and every trade-off in between (more
     * micro-batches or recomputation buy memory with time), so that a plan where several models share
     * devices can take the fastest variant that still fits.
     */
    static List<CallEstimate> paretoFront(List<CallEstimate> all) {
        List<CallEstimate> sorted = new ArrayList<>(all);
        sorted.sort((a, b) -> a.seconds() != b.seconds() ? Double.compare(a.seconds(), b.seconds())
                : Double.compare(a.transientBytes(), b.transientBytes()));
        List<CallEstimate> front = new ArrayList<>();
        for (CallEstimate e : sorted) {
            if (front.isEmpty() || e.transientBytes() < front.get(front.size() - 1).transientBytes()) {
                front.add(e);
            }
        }
        return front;
    }

    /** Micro-batch counts tried: powers of two (times pp with a pipeline), at most one sequence each. */
    static List<Integer> microBatchChoices(int pp, double seqsPerReplica) {
        List<Integer> r = new ArrayList<>();
        int base = pp == 1 ? 1 : pp;
        if (seqsPerReplica < base) {
            r.add((int) Math.max(1, Math.floor(seqsPerReplica)));
            return r;
        }
        for (int mb = base; mb <= seqsPerReplica && mb <= 64 * base; mb *= 2) {
            r.add(mb);
        }
        return r;
    }

    /** The two all-reduces (or reduce-scatter + all-gather) of one layer's pass under tensor parallelism. */
    private double tpCollectives(ModelSpec m, double tokens, int tp) {
        if (tp <= 1) {
            return 0;
        }
        return 2 * (comm.allReduce(tokens * m.hidden() * 2.0, tp, false) + k.tpCollectiveOverhead());
    }

    /** Forward of the slowest stage over one micro-batch, with its tensor-parallel collectives. */
    private double stageForward(ModelSpec m, double tokens, double seqLen, int tp, int pp, double headTokens) {
        int layers = MemoryModel.layersPerStage(m, pp);
        return layers * (compute.layerForward(m, tokens, seqLen, tp) + tpCollectives(m, tokens, tp))
                + compute.headForward(m, headTokens, tp);
    }

    double trainSeconds(ModelCall call, ModelSpec m, Workload w, ParallelStrategy s, double tokensMb, boolean recompute,
                        boolean crossDp, boolean crossPp, DeviceMesh mesh) {
        int layers = MemoryModel.layersPerStage(m, s.pp());
        double seqLen = w.seqLen();
        double fwdCompute = layers * compute.layerForward(m, tokensMb, seqLen, s.tp()) + compute.headForward(m, tokensMb, s.tp());
        double bwdCompute = layers * compute.layerBackward(m, tokensMb, seqLen, s.tp()) + compute.headBackward(m, tokensMb, s.tp());
        if (recompute) {
            bwdCompute += layers * compute.layerForward(m, tokensMb, seqLen, s.tp());
        }
        double step;
        if (s.zero3()) {
            boolean cross = mesh.nodes(cluster.gpusPerNode()) > 1;
            double p = 2.0 * m.totalParams();
            double gather = comm.allGather(p, s.dp(), cross);
            double fwd = Math.max(fwdCompute, gather);
            double bwd = Math.max(bwdCompute, gather + comm.reduceScatter(p, s.dp(), cross));
            step = s.microBatches() * (fwd + bwd + k.microBatchOverhead())
                    + compute.memoryPass(30.0 * m.totalParams() / s.dp()) + trainStepExtra(s);
        } else {
            double tpc = layers * tpCollectives(m, tokensMb, s.tp());
            double fwd = fwdCompute + tpc;
            double bwd = bwdCompute + tpc * (recompute ? 1.5 : 1.0);
            int slots = s.microBatches() + s.pp() - 1;
            double pipe = slots * (fwd + bwd);
            if (s.pp() > 1) {
                pipe += 2.0 * slots * comm.send(tokensMb * m.hidden() * 2.0, crossPp);
            }
            double pDev = MemoryModel.paramsPerDevice(m, s);
            double sync = s.dp() > 1
                    ? comm.reduceScatter(4.0 * pDev, s.dp(), crossDp) + comm.allGather(2.0 * pDev, s.dp(), crossDp) : 0;
            // measured on the engine: every replica updates its own copy (shard) whole; else ReaL's
            // distributed optimizer, a memory pass over this rank's share of the state
            double opt = Double.isNaN(k.optimizerSecondsPerParam()) ? compute.memoryPass(30.0 * pDev / s.dp())
                    : k.optimizerSecondsPerParam() * pDev;
            step = pipe + s.microBatches() * k.microBatchOverhead() + sync + opt + trainStepExtra(s);
        }
        return call.epochs() * call.trainSteps() * step + k.callOverhead();
    }

    /** A training step's measured seconds beyond what the table and the links price: fixed, and per data-parallel peer. */
    private double trainStepExtra(ParallelStrategy s) {
        return k.trainStepOverhead() + k.trainStepPerPeer() * (s.dp() - 1);
    }

    double inferenceSeconds(ModelSpec m, double seqLen, ParallelStrategy s, double tokensMb, boolean crossPp,
                            DeviceMesh mesh) {
        double fwd = stageForward(m, tokensMb, seqLen, s.tp(), s.pp(), tokensMb);
        double t;
        if (s.zero3()) {
            boolean cross = mesh.nodes(cluster.gpusPerNode()) > 1;
            t = s.microBatches() * Math.max(fwd, comm.allGather(2.0 * m.totalParams(), s.dp(), cross));
        } else {
            int slots = s.microBatches() + s.pp() - 1;
            t = slots * fwd;
            if (s.pp() > 1) {
                t += slots * comm.send(tokensMb * m.hidden() * 2.0, crossPp);
            }
        }
        return t + s.microBatches() * k.microBatchOverhead() + k.callOverhead();
    }

    /**
     * The forward over prompt + response that a GENERATE call writing its samples' logprobs
     * ({@link ModelCall#scoresSamples()}) runs after decoding, in the call's micro-batches: an inference
     * pass within the same call (no second call overhead). 0 for a call that only samples.
     */
    double scoringSeconds(ModelCall call, ModelSpec m, Workload w, ParallelStrategy s, double seqsPerReplica,
                          boolean crossPp, DeviceMesh mesh) {
        if (!call.scoresSamples()) {
            return 0;
        }
        double tokensMb = seqsPerReplica * w.seqLen() / s.microBatches();
        return inferenceSeconds(m, w.seqLen(), s, tokensMb, crossPp, mesh) - k.callOverhead();
    }

    /** The scoring forward's activations (after decoding: the larger of the two bounds the call). */
    private static double scoringActivationBytes(ModelCall call, ModelSpec m, Workload w, ParallelStrategy s,
                                                 double seqsPerReplica) {
        return call.scoresSamples()
                ? MemoryModel.inferenceActivationBytes(m, s, seqsPerReplica * w.seqLen() / s.microBatches(), w.seqLen()) : 0;
    }

    /** The draft training's one variant on a data-parallel layout (see the class comment). */
    private CallEstimate draftTrainEstimate(ModelCall call, ModelSpec m, Workload w, ParallelStrategy layout,
                                            boolean crossDp, double copy, double homeState) {
        Speculation sp = w.speculation();
        if (sp == null) {
            throw new IllegalArgumentException("call " + call.name() + " trains a speculative draft, but the workload "
                    + "decodes without one");
        }
        double examples = draftExamplesPerStep(w, layout.dp());
        double act = MemoryModel.draftTrainActivationBytes(m, examples, w.seqLen(), sp.draftTokens());
        return new CallEstimate(draftTrainSeconds(call, m, w, layout, examples, crossDp), 1, false, act, copy, homeState);
    }

    /** Examples of a draft training step on one replica: at most {@link Speculation#EXAMPLES_PER_STEP}, at most its rows. */
    static double draftExamplesPerStep(Workload w, int dp) {
        return Math.min(Speculation.EXAMPLES_PER_STEP, Math.floor((double) w.sequences() / dp));
    }

    double draftTrainSeconds(ModelCall call, ModelSpec m, Workload w, ParallelStrategy s, double examples, boolean crossDp) {
        double seqLen = w.seqLen();
        double tokens = examples * seqLen;
        int draftTokens = w.speculation().draftTokens();
        double masks = examples * draftTokens;
        double layers = m.layers() * (compute.layerForward(m, tokens, seqLen, 1) + compute.layerBackward(m, tokens, seqLen, 1) / 2);
        double head = compute.headForward(m, masks, 1) + compute.headBackward(m, masks, 1) / 2;
        double maskParams = (double) draftTokens * m.hidden();
        double sync = s.dp() > 1 ? comm.allReduce(4.0 * maskParams, s.dp(), crossDp) : 0;
        // AdamW over the mask embeddings: value, gradient and two moments (fp32) read, three written
        double opt = compute.memoryPass(28.0 * maskParams);
        return call.trainSteps() * (layers + head + sync + opt + k.microBatchOverhead()) + k.callOverhead();
    }

    enum GatherMode { NONE, ONCE, PER_STEP }

    double generateSeconds(ModelSpec m, Workload w, ParallelStrategy s, double seqsPerReplica, boolean crossPp,
                           DeviceMesh mesh, GatherMode gather) {
        int mb = s.microBatches();
        int pp = s.pp();
        int tp = s.tp();
        double b = seqsPerReplica / mb;
        boolean cross = mesh.nodes(cluster.gpusPerNode()) > 1;
        double gatherAll = gather == GatherMode.NONE ? 0 : comm.allGather(2.0 * m.totalParams(), s.dp(), cross);
        double prefillTokens = b * w.promptLen();
        double prefillStage = stageForward(m, prefillTokens, w.promptLen(), tp, pp, b);
        double prefill = (mb + pp - 1) * prefillStage + mb * k.microBatchOverhead();
        if (pp > 1) {
            prefill += (mb + pp - 1) * comm.send(prefillTokens * m.hidden() * 2.0, crossPp);
        }
        if (gather == GatherMode.PER_STEP) {
            prefill = Math.max(prefill, gatherAll);
        }
        int layers = MemoryModel.layersPerStage(m, pp);
        // the prefill's logits give the first new token (the engine samples it there): decoding steps give
        // the other genLen - 1, the first of them over prompt + 1 cached positions
        int g = Math.max(0, w.genLen() - 1);
        int chunks = Math.min(16, Math.max(1, g));
        double decode = 0;
        double tpc = tp > 1 ? 2 * (comm.allReduce(b * m.hidden() * 2.0, tp, false) + k.decodeTpOverhead()) : 0;
        for (int c = 0; c < chunks; c++) {
            int from = (int) ((long) c * g / chunks);
            int to = (int) ((long) (c + 1) * g / chunks);
            if (to == from) {
                continue;
            }
            double ctx = w.promptLen() + 1 + (from + to) / 2.0;
            double stage = layers * (compute.layerDecode(m, b, ctx, tp) + tpc) + compute.headDecode(m, b, tp);
            double step = Math.max(mb, pp) * stage + k.decodeStepOverhead();
            Speculation sp = w.speculation();
            if (sp != null) {
                // a step: the draft forward over the pending token and k masks through (L - skipped) / L
                // of the layers, the verification over k + 1 rows through all of them; it gains E tokens
                double rows = b * (sp.draftTokens() + 1);
                double verify = layers * (compute.layerDecode(m, rows, ctx, tp) + tpc) + compute.headDecode(m, rows, tp);
                double draft = layers * sp.draftCostFraction(m.layers()) * (compute.layerDecode(m, rows, ctx, tp) + tpc)
                        + compute.headDecode(m, rows, tp);
                step = (Math.max(mb, pp) * (verify + draft) + 2 * k.decodeStepOverhead()) / sp.expectedTokensPerStep();
            }
            if (pp > 1) {
                step += pp * comm.send(b * m.hidden() * 2.0, crossPp);
            }
            if (gather == GatherMode.PER_STEP) {
                step = Math.max(step, gatherAll);
            }
            decode += (to - from) * step;
        }
        double once = gather == GatherMode.ONCE ? gatherAll : 0;
        return once + prefill + decode + k.callOverhead();
    }
}
