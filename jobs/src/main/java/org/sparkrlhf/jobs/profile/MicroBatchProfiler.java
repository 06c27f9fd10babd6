package org.sparkrlhf.jobs.profile;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.profile.EngineProfiler;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.planner.cost.ProfileTable;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The seconds a pass over one more micro-batch costs beyond what the profile table's rows give for
 * its tokens: the calls' own path ({@link ResidentModel#forward(List)} for inference,
 * {@link ResidentModel#forwardBackward} for training, which release and rebuild activations between
 * micro-batches) runs the same sequences as one batch and as {@link #SPLIT} micro-batches, on a model
 * of {@link EngineProfiler#FEW} layers; each pass's residual against the table (its layer and head
 * rows at the micro-batch's tokens) is fitted as {@code micro-batches x overhead} (least squares
 * through zero, over the four passes), the planner's model of it.
 */
final class MicroBatchProfiler {
    static final int SPLIT = 4;
    /** The most sequences of the measured batch: enough for {@link #SPLIT} micro-batches of a grid point. */
    static final int MAX_SEQUENCES = 16;

    private MicroBatchProfiler() {
    }

    /** Seconds per micro-batch, never below zero (a table that over-predicts leaves no overhead). */
    static double measure(Backend backend, ModelConfig config, ProfileTable table, String model, String device,
                          int seqLen, long sequences, int repeats) {
        int seqs = (int) Math.min(sequences, MAX_SEQUENCES);
        int split = Math.min(SPLIT, seqs);
        ModelConfig few = EngineProfiler.withLayers(config.head() == ModelConfig.Head.CAUSAL_LM ? config
                : config.withHead(ModelConfig.Head.CAUSAL_LM), EngineProfiler.FEW);
        int len = Math.min(seqLen, few.maxPositions());
        double num = 0;
        double den = 0;
        try (ResidentModel m = new ResidentModel(LlamaModel.random(backend, few, DType.F32, 3, 0.02f), null, 0)) {
            for (int parts : split == 1 ? new int[]{1} : new int[]{1, split}) {
                List<Batch> batches = batches(few, seqs, len, parts);
                double tokens = (double) seqs * len / parts;
                double fwd = EngineProfiler.FEW * row(table, model, device, ProfileTable.Op.LAYER_FWD, tokens, len)
                        + row(table, model, device, ProfileTable.Op.HEAD_FWD, tokens, 0);
                double bwd = EngineProfiler.FEW * row(table, model, device, ProfileTable.Op.LAYER_BWD, tokens, len)
                        + row(table, model, device, ProfileTable.Op.HEAD_BWD, tokens, 0);
                double inference = median(repeats, () -> {
                    m.forward(batches);
                    backend.synchronize();
                });
                double training = median(repeats, () -> {
                    m.forwardBackward(batches, (i, stats) -> {
                        float[] d = new float[stats.logprobs().length];
                        Arrays.fill(d, -1f / d.length);
                        return d;
                    });
                    m.releaseActivations();
                    m.zeroGradients();
                    backend.synchronize();
                });
                for (double residual : new double[]{inference - parts * fwd, training - parts * (fwd + bwd)}) {
                    num += parts * residual;
                    den += (double) parts * parts;
                }
            }
        }
        return Math.max(0, num / den);
    }

    /** A table row's seconds (the table the profiler just measured has every row it asks for). */
    static double row(ProfileTable table, String model, String device, ProfileTable.Op op, double tokens,
                              double context) {
        double s = table.lookup(model, device, op, 1, tokens, context);
        if (Double.isNaN(s)) {
            throw new IllegalStateException("profile: the table has no " + op + " row for " + model + " on " + device);
        }
        return s;
    }

    /** {@code seqs} rows of {@code len} tokens (never the pad id) cut into {@code parts} equal micro-batches. */
    static List<Batch> batches(ModelConfig c, int seqs, int len, int parts) {
        List<Batch> out = new ArrayList<>();
        for (int j = 0; j < parts; j++) {
            int from = j * seqs / parts;
            int to = (j + 1) * seqs / parts;
            int[][] rows = new int[to - from][len];
            for (int b = from; b < to; b++) {
                for (int t = 0; t < len; t++) {
                    int id = (int) ((b * 31L + t * 7L + 3) % c.vocabSize());
                    rows[b - from][t] = id == c.padTokenId() ? (id + 1) % c.vocabSize() : id;
                }
            }
            out.add(Batch.rightPadded(rows, c.padTokenId()));
        }
        return out;
    }

    /** The median of {@code repeats} runs after one warm-up. */
    private static double median(int repeats, Runnable r) {
        r.run();
        double[] s = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long t0 = System.nanoTime();
            r.run();
            s[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(s);
        return s[repeats / 2];
    }
}
