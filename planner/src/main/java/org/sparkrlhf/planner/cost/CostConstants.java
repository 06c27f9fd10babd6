package org.sparkrlhf.planner.cost;

/**
 * The efficiencies and fixed overheads the roofline cost model applies on top of the hardware peaks.
 * <p>
 * Calibration: {@link #calibrated()} holds values fitted by {@code bench.EstimatorCalibration}
 * (coordinate descent, least squares on the log of the iteration time) so that the planner's
 * "symmetric" plan reproduces the iteration times ReaL published for its heuristic plan (Megatron-style:
 * TP 8 in a node, PP = nodes, DP 1) on its PPO setups on H100 nodes: the ReaL-Heuristic bars of the
 * throughput figure of the ReaL paper / ReaLHF README ({@code bench.PublishedReal}). They describe ReaL's
 * engine on H100s, decoding overheads included; a profile table measured on another engine replaces
 * the compute part. {@code bench.PlannerBenchmark} prints the remaining gap per setup.
 *
 * @param gemmEfficiency        achieved fraction of peak FLOP/s in the matrix multiplications
 * @param attentionEfficiency   achieved fraction of peak FLOP/s in attention (flash-attention kernels)
 * @param memoryEfficiency      achieved fraction of peak memory bandwidth in memory-bound kernels
 * @param networkEfficiency     achieved fraction of link bandwidth in collectives and transfers
 * @param activationTraffic     bytes of elementwise traffic (norms, rotary, SwiGLU, residuals, loss) per
 *                              token and layer, in units of {@code hidden x 2} bytes, divided by tp
 * @param layerOverhead         fixed seconds per layer and micro-batch of a forward pass (launches,
 *                              synchronisation); a backward pass costs twice that
 * @param tpCollectiveOverhead  fixed seconds added to every tensor-parallel collective (launch and the
 *                              wait for the slowest rank), on top of the link latency
 * @param decodeLayerOverhead   fixed seconds per layer and micro-batch of a decoding step
 * @param decodeTpOverhead      fixed seconds added to each of the two tensor-parallel collectives of a
 *                              layer in a decoding step (tp > 1 only)
 * @param decodeStepOverhead    fixed seconds per decoding step (sampling, stop checks, host sync)
 * @param callOverhead          fixed seconds per model function call (stage launch, data loading)
 * @param reallocOverhead       fixed seconds per parameter reallocation (communicator set-up, syncs)
 * @param memoryUsable          fraction of device memory a plan may use (the rest: CUDA context, NCCL
 *                              buffers, allocator fragmentation)
 * @param microBatchOverhead    fixed seconds per micro-batch of a pass beyond its layers and head (ReaL's
 *                              is in {@code layerOverhead}: 0 unless measured)
 * @param reallocIntraParams    parameters/s a reallocation moves inside a node; NaN: the node's link
 *                              bandwidth times {@code networkEfficiency}
 * @param reallocInterParams    parameters/s between nodes; NaN: the network's, likewise
 * @param allReduceIntra        a two-device all-reduce inside a node as measured; not measured: the
 *                              node's link (bandwidth times {@code networkEfficiency}, its latency)
 * @param allReduceInter        the same between nodes; not measured: the network's
 * @param optimizerSecondsPerParam seconds per parameter of a training step beyond its passes and its
 *                              gradients' all-reduce (the loss's all-reduce, the optimizer update) as
 *                              measured on the engine; NaN: a memory-bound pass over the optimizer state
 * @param trainStepOverhead     fixed seconds per training step beyond its passes, gradient sync and optimizer
 *                              (ReaL's is in {@code layerOverhead}: 0 unless measured)
 * @param trainStepPerPeer      seconds a training step adds per other rank of its data-parallel group,
 *                              beyond the gradients' all-reduce as the links price it (0 unless measured)
 */
public record CostConstants(double gemmEfficiency, double attentionEfficiency, double memoryEfficiency,
                            double networkEfficiency, double activationTraffic, double layerOverhead,
                            double tpCollectiveOverhead, double decodeLayerOverhead, double decodeTpOverhead,
                            double decodeStepOverhead,
                            double callOverhead, double reallocOverhead, double memoryUsable,
                            double microBatchOverhead, double reallocIntraParams, double reallocInterParams,
                            RuntimeCosts.Link allReduceIntra, RuntimeCosts.Link allReduceInter,
                            double optimizerSecondsPerParam, double trainStepOverhead,
                            double trainStepPerPeer) {

    public CostConstants {
        if (!(gemmEfficiency > 0 && gemmEfficiency <= 1) || !(attentionEfficiency > 0 && attentionEfficiency <= 1)
                || !(memoryEfficiency > 0 && memoryEfficiency <= 1) || !(networkEfficiency > 0 && networkEfficiency <= 1)
                || !(memoryUsable > 0 && memoryUsable <= 1)) {
            throw new IllegalArgumentException("efficiencies must lie in (0, 1]");
        }
        if (activationTraffic < 0 || layerOverhead < 0 || tpCollectiveOverhead < 0 || decodeLayerOverhead < 0
                || decodeTpOverhead < 0
                || decodeStepOverhead < 0 || callOverhead < 0 || reallocOverhead < 0 || microBatchOverhead < 0
                || trainStepOverhead < 0 || trainStepPerPeer < 0) {
            throw new IllegalArgumentException("overheads must be non-negative");
        }
        if (!Double.isNaN(reallocIntraParams) && !(reallocIntraParams > 0)
                || !Double.isNaN(reallocInterParams) && !(reallocInterParams > 0)) {
            throw new IllegalArgumentException("reallocation rates must be positive (NaN: the links')");
        }
        if (!Double.isNaN(optimizerSecondsPerParam) && !(optimizerSecondsPerParam > 0 && Double.isFinite(optimizerSecondsPerParam))) {
            throw new IllegalArgumentException("an optimizer step's seconds per parameter must be positive (NaN: a memory pass)");
        }
    }

    /** The constants fitted to ReaL's published heuristic-plan measurements (see the class comment). */
    public static CostConstants calibrated() {
        return new CostConstants(0.1375, 0.35, 0.7, 0.8, 24, 1.219e-3, 1.988e-4, 4.988e-4, 2.494e-4, 6.911e-3, 0.5144,
                0.05, 0.92, 0, Double.NaN, Double.NaN,
                RuntimeCosts.Link.NOT_MEASURED, RuntimeCosts.Link.NOT_MEASURED, Double.NaN, 0, 0);
    }

    /**
     * The parameters fitted to the heuristic plan, in the order {@link #withFitted} takes them. The
     * heuristic always decodes with tp = 8, so it fixes only the per-layer decoding overhead at tp 8,
     * {@code decodeLayerOverhead + 2 decodeTpOverhead}; how it splits between the part every layout pays
     * and the part only tensor parallelism pays ({@link #decodeTpShare}) is fitted separately.
     */
    public double[] fitted() {
        return new double[]{gemmEfficiency, layerOverhead, tpCollectiveOverhead, decodeOverheadAtTp8(),
                decodeStepOverhead, callOverhead};
    }

    public static final String[] FITTED_NAMES = {"gemmEfficiency", "layerOverhead", "tpCollectiveOverhead",
            "decodeOverheadAtTp8", "decodeStepOverhead", "callOverhead"};

    public double decodeOverheadAtTp8() {
        return decodeLayerOverhead + 2 * decodeTpOverhead;
    }

    /** The share of the tp-8 per-layer decoding overhead that tensor parallelism causes. */
    public double decodeTpShare() {
        double d = decodeOverheadAtTp8();
        return d == 0 ? 0 : 2 * decodeTpOverhead / d;
    }

    public CostConstants withFitted(double[] v) {
        double share = decodeTpShare();
        return new CostConstants(v[0], attentionEfficiency, memoryEfficiency, networkEfficiency, activationTraffic,
                v[1], v[2], v[3] * (1 - share), v[3] * share / 2, v[4], v[5], reallocOverhead, memoryUsable,
                microBatchOverhead, reallocIntraParams, reallocInterParams, allReduceIntra, allReduceInter,
                optimizerSecondsPerParam, trainStepOverhead, trainStepPerPeer);
    }

    public CostConstants withDecodeTpShare(double share) {
        double d = decodeOverheadAtTp8();
        return new CostConstants(gemmEfficiency, attentionEfficiency, memoryEfficiency, networkEfficiency,
                activationTraffic, layerOverhead, tpCollectiveOverhead, d * (1 - share), d * share / 2,
                decodeStepOverhead, callOverhead, reallocOverhead, memoryUsable, microBatchOverhead,
                reallocIntraParams, reallocInterParams, allReduceIntra, allReduceInter, optimizerSecondsPerParam,
                trainStepOverhead, trainStepPerPeer);
    }

    /**
     * These constants with the runtime's fixed costs measured on the cluster in place of ReaL's; a
     * bandwidth between executors that was not measured (NaN) leaves the network's.
     */
    public CostConstants withRuntimeCosts(RuntimeCosts measured) {
        return new CostConstants(gemmEfficiency, attentionEfficiency, memoryEfficiency, networkEfficiency,
                activationTraffic, layerOverhead, tpCollectiveOverhead, decodeLayerOverhead, decodeTpOverhead,
                measured.decodeStepOverhead(), measured.callOverhead(), measured.reallocOverhead(), memoryUsable,
                measured.microBatchOverhead(), measured.reallocIntraParams(), measured.reallocInterParams(),
                measured.allReduceIntra(), measured.allReduceInter(), measured.optimizerSecondsPerParam(),
                measured.trainStepOverhead(), measured.trainStepPerPeer());
    }
}
