package org.sparkrlhf.planner.cost;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The runtime's fixed costs as measured on a cluster, beside a profile table: they replace the
 * constants fitted to ReaL's engine ({@link CostConstants#callOverhead()},
 * {@link CostConstants#decodeStepOverhead()}, {@link CostConstants#reallocOverhead()}) and the links'
 * nominal bandwidths in a reallocation. Stored as {@code key=value} lines.
 *
 * @param callOverhead           seconds of a model function call that does nothing (stage launch, the
 *                               ranks' rendezvous, the results' return)
 * @param decodeStepOverhead     seconds of a decoding step beyond its decoder layers (the head at the
 *                               decode batch, sampling, the stop check)
 * @param microBatchOverhead     seconds a pass over one more micro-batch costs beyond what the profile
 *                               table's layer and head rows give for its tokens (the split's
 *                               bookkeeping, per-pass syncs)
 * @param reallocOverhead        seconds of a reallocation that moves nothing: its stage over two devices
 * @param reallocIntraParams     parameters/s a reallocation moves between two devices of one executor (or
 *                               node), its fixed seconds aside (parameters: the runtime moves fp32, the
 *                               planner counts bf16 bytes; a rate of parameters means the same to both);
 *                               NaN when the profile's executors have one device each
 * @param reallocInterParams     parameters/s between two executors; NaN when the profile ran on one
 *                               executor. A rate not measured leaves the planner the link's bandwidth.
 * @param allReduceIntra         an all-reduce over two devices of one executor through the runtime's
 *                               communicator (NaN fields when the executors have one device each)
 * @param allReduceInter         the same between two executors (NaN fields on one executor)
 * @param optimizerSecondsPerParam seconds per parameter of a training step beyond its passes and its
 *                               gradients' all-reduce: the loss's all-reduce over the data-parallel
 *                               group and the AdamW update, as the runtime's train step runs them,
 *                               timed on the profiled model (all of its parameters); NaN when not measured
 * @param trainStepOverhead      seconds of a training step beyond all of the above (the loss over the
 *                               step's rows, the step's bookkeeping and syncs, a train call's larger
 *                               inputs and results), measured from a real train call; 0 until then
 * @param trainStepPerPeer       seconds a training step adds per other rank of its data-parallel group
 *                               (the runtime's all-reduce over TCP sends each rank's whole gradient to
 *                               every other rank and waits for each; on oversubscribed cores every
 *                               peer's message waits for a CPU slice), measured from train calls over the
 *                               same rows per rank with and without peers; 0 until then
 */
public record RuntimeCosts(double callOverhead, double decodeStepOverhead, double microBatchOverhead,
                           double reallocOverhead, double reallocIntraParams, double reallocInterParams,
                           Link allReduceIntra, Link allReduceInter, double optimizerSecondsPerParam,
                           double trainStepOverhead, double trainStepPerPeer) {
    /**
     * Seconds of an all-reduce of one float over two devices, and the bytes/s of a ring all-reduce
     * beyond it ({@code 2 (n - 1) / n} of the buffer through each link); both NaN when not measured.
     */
    public record Link(double latencySeconds, double bytesPerSecond) {
        public static final Link NOT_MEASURED = new Link(Double.NaN, Double.NaN);

        public Link {
            if (Double.isNaN(latencySeconds) != Double.isNaN(bytesPerSecond)
                    || !Double.isNaN(latencySeconds) && !(latencySeconds >= 0 && bytesPerSecond > 0
                    && Double.isFinite(latencySeconds) && Double.isFinite(bytesPerSecond))) {
                throw new IllegalArgumentException("an all-reduce link needs a finite latency >= 0 and bandwidth > 0 "
                        + "(both NaN when not measured), got " + latencySeconds + " s, " + bytesPerSecond + " bytes/s");
            }
        }

        public boolean measured() {
            return !Double.isNaN(latencySeconds);
        }
    }

    /** Raise with a change of the keys: costs files of another format are profiled again. */
    public static final String FORMAT = "5";

    public RuntimeCosts {
        java.util.Objects.requireNonNull(allReduceIntra, "allReduceIntra");
        java.util.Objects.requireNonNull(allReduceInter, "allReduceInter");
        for (double s : new double[]{callOverhead, decodeStepOverhead, microBatchOverhead, reallocOverhead,
                trainStepOverhead, trainStepPerPeer}) {
            if (!(s >= 0) || Double.isInfinite(s)) {
                throw new IllegalArgumentException("runtime costs must be finite and non-negative seconds, got call "
                        + callOverhead + " s, decoding step " + decodeStepOverhead + " s, micro-batch "
                        + microBatchOverhead + " s, reallocation " + reallocOverhead + " s, training step "
                        + trainStepOverhead + " s, training step per peer " + trainStepPerPeer + " s");
            }
        }
        if (!rate(optimizerSecondsPerParam)) {
            throw new IllegalArgumentException("an optimizer step's seconds per parameter must be positive and finite "
                    + "(NaN when not measured), got " + optimizerSecondsPerParam);
        }
        if (!rate(reallocIntraParams) || !rate(reallocInterParams)) {
            throw new IllegalArgumentException("reallocation rates must be positive and finite (NaN when not measured), got "
                    + "" + reallocIntraParams + " and " + reallocInterParams + " parameters/s");
        }
    }

    private static boolean rate(double r) {
        return Double.isNaN(r) || r > 0 && r < Double.POSITIVE_INFINITY;
    }

    /** These costs with {@code seconds} per call (measured from a real forward call). */
    public RuntimeCosts withCallOverhead(double seconds) {
        return new RuntimeCosts(seconds, decodeStepOverhead, microBatchOverhead, reallocOverhead, reallocIntraParams,
                reallocInterParams, allReduceIntra, allReduceInter, optimizerSecondsPerParam, trainStepOverhead,
                trainStepPerPeer);
    }

    /** These costs with {@code seconds} per decoding step (measured from a real generation call). */
    public RuntimeCosts withDecodeStepOverhead(double seconds) {
        return new RuntimeCosts(callOverhead, seconds, microBatchOverhead, reallocOverhead, reallocIntraParams,
                reallocInterParams, allReduceIntra, allReduceInter, optimizerSecondsPerParam, trainStepOverhead,
                trainStepPerPeer);
    }

    /**
     * These costs with {@code seconds} per training step and {@code perPeer} more per other rank of its
     * data-parallel group (measured from real train calls).
     */
    public RuntimeCosts withTrainStep(double seconds, double perPeer) {
        return new RuntimeCosts(callOverhead, decodeStepOverhead, microBatchOverhead, reallocOverhead, reallocIntraParams,
                reallocInterParams, allReduceIntra, allReduceInter, optimizerSecondsPerParam, seconds, perPeer);
    }

    public String format() {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "call_overhead_seconds=%.6e%n", callOverhead));
        b.append(String.format(Locale.ROOT, "decode_step_seconds=%.6e%n", decodeStepOverhead));
        b.append(String.format(Locale.ROOT, "micro_batch_seconds=%.6e%n", microBatchOverhead));
        b.append(String.format(Locale.ROOT, "train_step_seconds=%.6e%n", trainStepOverhead));
        b.append(String.format(Locale.ROOT, "train_step_per_peer_seconds=%.6e%n", trainStepPerPeer));
        b.append(String.format(Locale.ROOT, "realloc_overhead_seconds=%.6e%n", reallocOverhead));
        if (!Double.isNaN(reallocIntraParams)) {
            b.append(String.format(Locale.ROOT, "realloc_intra_params_per_second=%.6e%n", reallocIntraParams));
        }
        if (!Double.isNaN(reallocInterParams)) {
            b.append(String.format(Locale.ROOT, "realloc_inter_params_per_second=%.6e%n", reallocInterParams));
        }
        if (!Double.isNaN(optimizerSecondsPerParam)) {
            b.append(String.format(Locale.ROOT, "optimizer_seconds_per_parameter=%.6e%n", optimizerSecondsPerParam));
        }
        for (String where : List.of("intra", "inter")) {
            Link l = where.equals("intra") ? allReduceIntra : allReduceInter;
            if (l.measured()) {
                b.append(String.format(Locale.ROOT, "allreduce_%s_latency_seconds=%.6e%n", where, l.latencySeconds()));
                b.append(String.format(Locale.ROOT, "allreduce_%s_bytes_per_second=%.6e%n", where, l.bytesPerSecond()));
            }
        }
        return b.toString();
    }

    private static final List<String> REQUIRED = List.of("call_overhead_seconds", "decode_step_seconds",
            "micro_batch_seconds", "realloc_overhead_seconds");
    private static final List<String> OPTIONAL = List.of("realloc_intra_params_per_second",
            "realloc_inter_params_per_second", "allreduce_intra_latency_seconds", "allreduce_intra_bytes_per_second",
            "allreduce_inter_latency_seconds", "allreduce_inter_bytes_per_second",
            "optimizer_seconds_per_parameter", "train_step_seconds", "train_step_per_peer_seconds");

    /** Parses {@link #format()}'s lines; {@code source} names the file in errors. */
    public static RuntimeCosts parse(String source, List<String> lines) {
        Map<String, Double> v = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int eq = line.indexOf('=');
            String where = source + ":" + (i + 1) + ": ";
            if (eq < 0) {
                throw new IllegalArgumentException(where + "expected key=value, got '" + line + "'");
            }
            String key = line.substring(0, eq).trim();
            if (!REQUIRED.contains(key) && !OPTIONAL.contains(key)) {
                throw new IllegalArgumentException(where + "unknown key '" + key + "'");
            }
            try {
                v.put(key, Double.parseDouble(line.substring(eq + 1).trim()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(where + key + ": not a number");
            }
        }
        for (String key : REQUIRED) {
            if (!v.containsKey(key)) {
                throw new IllegalArgumentException(source + ": needs " + REQUIRED + " (a file of an older profiler: "
                        + "run spark-rlhf profile again), lacks " + key);
            }
        }
        return new RuntimeCosts(v.get("call_overhead_seconds"), v.get("decode_step_seconds"),
                v.get("micro_batch_seconds"), v.get("realloc_overhead_seconds"), v.getOrDefault("realloc_intra_params_per_second", Double.NaN),
                v.getOrDefault("realloc_inter_params_per_second", Double.NaN), link(source, v, "intra"),
                link(source, v, "inter"), v.getOrDefault("optimizer_seconds_per_parameter", Double.NaN),
                v.getOrDefault("train_step_seconds", 0.0), v.getOrDefault("train_step_per_peer_seconds", 0.0));
    }

    private static Link link(String source, Map<String, Double> v, String where) {
        Double latency = v.get("allreduce_" + where + "_latency_seconds");
        Double bandwidth = v.get("allreduce_" + where + "_bytes_per_second");
        if ((latency == null) != (bandwidth == null)) {
            throw new IllegalArgumentException(source + ": allreduce_" + where + "_latency_seconds and _bytes_per_second "
                    + "come together");
        }
        return latency == null ? Link.NOT_MEASURED : new Link(latency, bandwidth);
    }
}
