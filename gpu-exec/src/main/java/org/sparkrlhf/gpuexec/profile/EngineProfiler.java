package org.sparkrlhf.gpuexec.profile;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Measures the engine's own passes on one backend for the planner's profile table.
 *
 * <p>A layer is timed by difference: the same architecture is built (random weights) with {@link #FEW}
 * and {@link #MORE} decoder layers and the whole forward (or forward + backward, or decoding step) of
 * each is timed through {@link LlamaModel} and {@link Generator}, so what is measured is exactly the code
 * a call runs; one layer is the difference divided by the extra layers, and the head (embedding, final
 * norm, LM head, log-softmax, the download of the logprobs) is what the {@link #FEW}-layer model spends
 * beyond its layers; the value head (a critic's) likewise, from a model with a score head; a decoding
 * step's {@code head_decode} (embedding, head, sampling, the stop check) is what the {@link #FEW}-layer
 * model's step spends beyond its layer. Each point is the median of {@code repeats} runs after one warm-up; each op's
 * series is then made non-decreasing in tokens ({@link MonotoneRows}).
 *
 * <p>Only tp = 1 is measured: tensor-parallel shards and the collectives are not profiled (the planner
 * keeps its roofline for tp > 1).
 */
public final class EngineProfiler {
    /**
     * The engine's timing generation: profiles cached under another version are not used. Raise it with
     * a change that makes the engine's passes faster or slower (kernels, backends, the model's code).
     */
    public static final String VERSION = "4";
    public static final int FEW = 1;
    static final int MORE = 4;
    /** The shortest sample: ops faster than this are timed in loops. */
    static final double MIN_SAMPLE_SECONDS = 0.02;
    /** An op this slow is warmed up once and sampled fewer times; a pass sweep stops after such a point. */
    static final double SLOW_SECONDS = 1.0;

    private final Backend backend;
    private final ModelConfig config;
    private final DType dtype;
    private final int repeats;
    private final Lockstep lockstep;

    /** A profiler for a device that profiles alone. */
    public EngineProfiler(Backend backend, ModelConfig config, DType dtype, int repeats) {
        this(backend, config, dtype, repeats, Lockstep.ALONE);
    }

    /**
     * A profiler that times each pass while the devices of {@code lockstep} run the same pass (the
     * devices of an executor that profile at once).
     */
    public EngineProfiler(Backend backend, ModelConfig config, DType dtype, int repeats, Lockstep lockstep) {
        if (repeats < 1) {
            throw new IllegalArgumentException("repeats must be >= 1, got " + repeats);
        }
        if (config.head() != ModelConfig.Head.CAUSAL_LM) {
            // a score head is one column: the causal head bounds it from above; profile the causal LM
            config = config.withHead(ModelConfig.Head.CAUSAL_LM);
        }
        this.backend = backend;
        this.config = config;
        this.dtype = dtype;
        this.repeats = repeats;
        this.lockstep = lockstep;
    }

    /** The architecture with {@code layers} decoder layers (sliding windows of the first layers). */
    public static ModelConfig withLayers(ModelConfig c, int layers) {
        int[] windows = Arrays.copyOf(c.slidingWindows(), layers);
        return new ModelConfig(c.architecture(), c.modelType(), c.head(), c.vocabSize(), c.hiddenSize(),
                c.intermediateSize(), layers, c.numHeads(), c.numKvHeads(), c.headDim(), c.rmsNormEps(), c.ropeTheta(),
                c.rope(), Math.max(c.maxPositions(), 1), c.qkvBias(), c.oBias(), c.mlpBias(), c.tieWordEmbeddings(), windows,
                c.padTokenId(), c.bosTokenId(), c.eosTokenIds(), null);
    }

    /** Profiles {@code grid}; rows are named {@code model} and {@code gpu} as the planner names them. */
    public EngineProfile run(String model, String gpu, ProfileGrid grid) {
        List<ProfileRow> rows = new ArrayList<>();
        try (LlamaModel few = LlamaModel.random(backend, withLayers(config, FEW), dtype, 1, 0.02f);
             LlamaModel more = LlamaModel.random(backend, withLayers(config, MORE), dtype, 1, 0.02f);
             LlamaModel valueFew = LlamaModel.random(backend,
                     withLayers(config.withHead(ModelConfig.Head.SCORE), FEW), dtype, 1, 0.02f)) {
            int extra = MORE - FEW;
            // the JIT compiles the kernels during the first passes, and what the JVM ran before: nothing is
            // timed until it has settled on every device
            Batch warm = batch(1, Math.min(grid.passContexts().get(0), config.maxPositions()));
            JitClock.settle(() -> {
                forwardBackward(more, warm);
                forwardBackward(few, warm);
                forward(few, warm);
            }, JitClock.sinceLast(), lockstep::max);
            for (int context : grid.passContexts()) {
                int ctx = Math.min(context, config.maxPositions());
                for (int seqs : grid.passSequences()) {
                    long tokens = (long) seqs * ctx;
                    if (tokens > grid.maxPassTokens() && seqs > 1) {
                        break;
                    }
                    Batch batch = batch(seqs, ctx);
                    boolean heads = context == grid.passContexts().get(grid.passContexts().size() - 1);
                    // the passes of one difference side by side in every sample (see interleaved); the value
                    // head's passes join them at the context the heads are measured at
                    List<Runnable> passes = new ArrayList<>(List.of(() -> forward(few, batch), () -> forward(more, batch),
                            () -> forwardBackward(few, batch), () -> forwardBackward(more, batch)));
                    if (heads) {
                        passes.add(() -> values(valueFew, batch));
                        passes.add(() -> valuesForwardBackward(valueFew, batch));
                    }
                    double[][] t = interleaved(passes);
                    // per sample: 0 few fwd, 1 more fwd, 2 few fwd+bwd, 3 more fwd+bwd, 4 values fwd, 5 values fwd+bwd
                    double layerFwd = positive(medianOf(t, x -> (x[1] - x[0]) / extra));
                    double layerBwd = positive(medianOf(t, x -> ((x[3] - x[2]) - (x[1] - x[0])) / extra));
                    rows.add(new ProfileRow(model, gpu, "layer_fwd", 1, tokens, ctx, layerFwd));
                    rows.add(new ProfileRow(model, gpu, "layer_bwd", 1, tokens, ctx, layerBwd));
                    if (heads) {
                        double headFwd = positive(medianOf(t, x -> x[0] - FEW * (x[1] - x[0]) / extra));
                        double headBwd = positive(medianOf(t, x -> (x[2] - x[0]) - FEW * ((x[3] - x[2]) - (x[1] - x[0])) / extra));
                        // the planner asks for the head without a context
                        rows.add(new ProfileRow(model, gpu, "head_fwd", 1, tokens, 0, headFwd));
                        rows.add(new ProfileRow(model, gpu, "head_bwd", 1, tokens, 0, headBwd));
                        // the value head of a critic built from this architecture: the same trunk, a [1, hidden] head
                        rows.add(new ProfileRow(model, gpu, "value_head_fwd", 1, tokens, 0,
                                positive(medianOf(t, x -> x[4] - FEW * (x[1] - x[0]) / extra))));
                        rows.add(new ProfileRow(model, gpu, "value_head_bwd", 1, tokens, 0,
                                positive(medianOf(t, x -> (x[5] - x[4]) - FEW * ((x[3] - x[2]) - (x[1] - x[0])) / extra))));
                    }
                    double bothMore = medianOf(t, x -> x[3]);
                    if (bothMore > SLOW_SECONDS) {
                        break; // larger passes: the table scales this one proportionally
                    }
                }
                few.releaseActivations();
                more.releaseActivations();
                valueFew.releaseActivations();
            }
            int steps = Math.min(grid.decodeSteps(), config.maxPositions() - grid.decodeContext());
            if (steps >= 2) {
                long ctx = grid.decodeContext() + steps / 2;
                for (int b : grid.decodeBatches()) {
                    double[][] t = decodeSteps(few, more, b, grid.decodeContext(), steps);
                    // per sample: a step of the few-layer model, of the more-layer one
                    double layer = positive(medianOf(t, x -> (x[1] - x[0]) / extra));
                    rows.add(new ProfileRow(model, gpu, "layer_decode", 1, b, ctx, layer));
                    // the planner prices a step as its layers plus this row: the head at the decode batch is in it
                    rows.add(new ProfileRow(model, gpu, "head_decode", 1, b, 0,
                            positive(medianOf(t, x -> x[0] - FEW * (x[1] - x[0]) / extra))));
                    double stepMore = medianOf(t, x -> x[1]);
                    if (stepMore * steps > SLOW_SECONDS) {
                        break; // larger batches: the table scales this one proportionally
                    }
                }
            }
        }
        return new EngineProfile(MonotoneRows.fit(rows));
    }

    /**
     * Per sample, the seconds of one decoding step of {@code few} and of {@code more}: generating
     * {@code steps} tokens minus generating one, per extra token, the four generations side by side
     * ({@link #interleaved}).
     */
    private double[][] decodeSteps(LlamaModel few, LlamaModel more, int batch, int prompt, int steps) {
        int[][] prompts = new int[batch][prompt];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < prompt; t++) {
                prompts[b][t] = token(b, t);
            }
        }
        // no eos ids: every row decodes every step, as the planner assumes; no row finishes, so the pad
        // id is never fed (a config without one, as Llama 3's, gets 0)
        int pad = Math.max(0, config.padTokenId());
        Generator.Options many = new Generator.Options(steps, SamplingParams.GREEDY, 0, new int[0], pad, false);
        Generator.Options one = new Generator.Options(1, SamplingParams.GREEDY, 0, new int[0], pad, false);
        // a generator per run (a generator keeps its buffers for the next run of the same shape only)
        try (Generator fMany = new Generator(few); Generator fOne = new Generator(few);
             Generator mMany = new Generator(more); Generator mOne = new Generator(more)) {
            double[][] t = interleaved(List.of(() -> fMany.generate(prompts, many), () -> fOne.generate(prompts, one),
                    () -> mMany.generate(prompts, many), () -> mOne.generate(prompts, one)));
            double[][] out = new double[t.length][];
            for (int i = 0; i < t.length; i++) {
                out[i] = new double[]{(t[i][0] - t[i][1]) / (steps - 1), (t[i][2] - t[i][3]) / (steps - 1)};
            }
            return out;
        }
    }

    /*
     * The passes are timed as the calls run them: a scoring forward (inference calls, and generation
     * that writes its samples' logprobs) keeps no activations for a backward, runs in passes of at
     * most the model's tokens per pass and releases its buffers at the end (ResidentModel's forward);
     * a training step releases its activations after the backward (TrainStep). Timed with the
     * activations of a forward for backward kept from one run to the next instead, the profile missed
     * the buffers' allocation and the scoring path's own work: the GRPO example's scoring forward took
     * 1.2-1.5x what the table said (256 rows of 19 tokens per rank).
     */
    private void forward(LlamaModel m, Batch batch) {
        m.forward(List.of(batch), false, false);
        m.releaseActivations();
        backend.synchronize();
    }

    private void forwardBackward(LlamaModel m, Batch batch) {
        m.forward(batch, false);
        float[] d = new float[batch.batch() * (batch.time() - 1)];
        Arrays.fill(d, -1f / d.length);
        m.backward(d, null);
        m.releaseActivations();
        backend.synchronize();
    }

    private void values(LlamaModel m, Batch batch) {
        m.values(List.of(batch), false);
        m.releaseActivations();
        backend.synchronize();
    }

    private void valuesForwardBackward(LlamaModel m, Batch batch) {
        float[] v = m.values(batch);
        float[] d = new float[v.length];
        Arrays.fill(d, 1f / d.length);
        m.backwardValues(d);
        m.releaseActivations();
        backend.synchronize();
    }

    private Batch batch(int seqs, int len) {
        int[][] rows = new int[seqs][len];
        for (int b = 0; b < seqs; b++) {
            for (int t = 0; t < len; t++) {
                rows[b][t] = token(b, t);
            }
        }
        return Batch.rightPadded(rows, config.padTokenId());
    }

    /** A token id that is never the pad token (padding would shorten the rows). */
    private int token(int b, int t) {
        int v = config.vocabSize();
        int id = (int) ((b * 31L + t * 7L + 3) % v);
        return id == config.padTokenId() ? (id + 1) % v : id;
    }

    /**
     * Seconds of one run of each op, per sample: every sample runs each op in turn, so that a quantity
     * derived from several ops (a layer as the difference of two models' passes) is computed within one
     * sample and its median taken over the samples. On a shared machine the load drifts over the
     * seconds a point takes: timed one after the other in blocks, the two passes of a difference saw
     * different loads (on 2 cores shared with other builds, a 4x larger pass came out cheaper than a
     * smaller one, the monotone fit flattened the series, and a 512-sequence batch was priced at half
     * its time); timed in the same sample they see the same. Short ops are timed in loops of at least
     * {@link #MIN_SAMPLE_SECONDS} per sample (a sample is the loop's mean), so that the clock, the JIT
     * and the scheduler's noise do not swamp microsecond layers; each op is first warmed up until it
     * has taken at least 3 runs and {@link #MIN_SAMPLE_SECONDS}.
     */
    private double[][] interleaved(List<Runnable> ops) {
        int n = ops.size();
        int[] loop = new int[n];
        double slowest = 0;
        for (int k = 0; k < n; k++) {
            Runnable r = ops.get(k);
            long warm = System.nanoTime();
            int runs = 0;
            double once;
            do {
                long t0 = System.nanoTime();
                r.run();
                once = (System.nanoTime() - t0) / 1e9;
                runs++;
            } while ((runs < 3 && once < SLOW_SECONDS) || (System.nanoTime() - warm) / 1e9 < MIN_SAMPLE_SECONDS);
            // the devices time the same number of runs, so that their samples start and end together
            loop[k] = lockstep.max((int) Math.max(1, Math.ceil(MIN_SAMPLE_SECONDS / Math.max(once, 1e-7))));
            slowest = Math.max(slowest, once);
        }
        // a big model on a CPU: fewer samples of a slow op (its noise is small against it), so that a
        // 1B-class profile stays within minutes
        int samples = lockstep.max(slowest < SLOW_SECONDS ? repeats
                : Math.max(1, Math.min(repeats, (int) (2 * SLOW_SECONDS / slowest))));
        double[][] s = new double[samples][n];
        for (int i = 0; i < samples; i++) {
            for (int k = 0; k < n; k++) {
                Runnable r = ops.get(k);
                lockstep.barrier();
                long t0 = System.nanoTime();
                for (int j = 0; j < loop[k]; j++) {
                    r.run();
                }
                // the block ends when every device has run it: a call's ranks wait for the slowest at its
                // end, a data-parallel step at each all-reduce (timed alone, each device's median was below
                // what the slower of two costs: the GRPO example's train steps waited 1-16 ms at each)
                lockstep.barrier();
                s[i][k] = (System.nanoTime() - t0) / 1e9 / loop[k];
            }
        }
        return s;
    }

    /** The median over samples of what {@code f} computes from one sample's times. */
    private static double medianOf(double[][] samples, java.util.function.ToDoubleFunction<double[]> f) {
        double[] v = new double[samples.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = f.applyAsDouble(samples[i]);
        }
        Arrays.sort(v);
        return v[v.length / 2];
    }

    private static double medianOf(List<Double> v) {
        double[] s = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return s[s.length / 2];
    }

    /**
     * A difference of two noisy timings can come out at or below zero when the op is much cheaper than
     * the noise; the table needs a positive time, and a nanosecond says "negligible".
     */
    private static double positive(double s) {
        return Math.max(s, 1e-9);
    }
}
