package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A model replica or shard kept in an executor's {@link ModelStore}: the engine's model (the whole
 * {@link LlamaModel} on a data-parallel layout, or this rank's shard of it under tensor / pipeline
 * parallelism), its optimizer when this copy is trained, and the parameter version (training steps
 * applied). The calls use it through {@link #forward}, {@link #backward}, {@link #generate} and
 * {@link #step}; a shard must first be bound to the call's groups ({@link #bind}).
 */
public final class ResidentModel implements ShardTensors, AutoCloseable {
    private final LlamaModel model;
    private final AdamW optimizer;
    /** A shard's stand-in groups (null on a whole model, whose groups are single). */
    private final BoundCollective tensorGroup;
    private final BoundCollective pipelineGroup;
    private long version;

    public ResidentModel(LlamaModel model, AdamW optimizer, long version) {
        this(model, optimizer, null, null, version);
    }

    private ResidentModel(LlamaModel model, AdamW optimizer, BoundCollective tensorGroup,
                          BoundCollective pipelineGroup, long version) {
        this.model = model;
        this.optimizer = optimizer;
        this.tensorGroup = tensorGroup;
        this.pipelineGroup = pipelineGroup;
        this.version = version;
    }

    /** A tensor / pipeline shard built on stand-in groups (see {@link BoundCollective}). */
    static ResidentModel sharded(LlamaModel shard, AdamW optimizer, BoundCollective tensorGroup,
                                 BoundCollective pipelineGroup, long version) {
        return new ResidentModel(shard, optimizer, tensorGroup, pipelineGroup, version);
    }

    public boolean isSharded() {
        return !model.isWhole();
    }

    /** The whole model; an error for a tensor / pipeline shard (use the methods of this class). */
    public LlamaModel model() {
        if (isSharded()) {
            throw new IllegalStateException("this copy is a tensor/pipeline shard (" + model.shard().label()
                    + "), not a whole model");
        }
        return model;
    }

    /** The optimizer; an error for copies that are only used for inference. */
    public AdamW optimizer() {
        if (!hasOptimizer()) {
            throw new IllegalStateException("this copy of the model has no optimizer (it is not trained)");
        }
        return optimizer;
    }

    /** Binds a shard's tensor and pipeline groups to this call's (every rank of the call, at its start). */
    public void bind(RankContext context) {
        if (tensorGroup != null && tensorGroup.size() > 1) {
            tensorGroup.bind(context.tensorGroup());
        }
        if (pipelineGroup != null && pipelineGroup.size() > 1) {
            pipelineGroup.bind(context.pipelineGroup());
        }
    }

    public Backend backend() {
        return model.backend();
    }

    /** The model's configuration (the whole model's, also on a shard). */
    public org.sparkrlhf.gpuexec.model.ModelConfig config() {
        return model.config();
    }

    /** A value model's value at every position (a shard's come from the last stage, on every rank). */
    public float[] values(Batch batch) {
        return model.values(batch);
    }

    /** The backward of {@link #values} from dLoss/dValue into this copy's gradients. */
    public void backwardValues(float[] dValues) {
        model.backwardValues(dValues);
    }

    /** A sequence-classification model's score of each row (at its last non-pad token). */
    public float[] scores(Batch batch) {
        return model.scores(batch);
    }

    /** The backward of {@link #scores} from dLoss/dScore [B] into this copy's gradients. */
    public void backwardScores(float[] dScores) {
        model.backwardScores(dScores);
    }

    public TokenStats forward(Batch batch, boolean withEntropy) {
        return model.forward(batch, withEntropy);
    }

    public void backward(float[] dLogprobs, float[] dEntropies) {
        model.backward(dLogprobs, dEntropies);
    }

    /** What a training loss makes of one micro-batch's forward: dLoss/dLogprob for its backward. */
    @FunctionalInterface
    public interface MicroBatchLoss {
        float[] dLogprobs(int microBatch, TokenStats stats);
    }

    /**
     * Forward and backward over micro-batches whose gradients add up: with pipeline stages
     * GPipe-style (every forward, then every backward, so the stages overlap), else one after the
     * other (keeping one forward's activations at a time). The same sums either way.
     */
    public void forwardBackward(List<Batch> microBatches, MicroBatchLoss loss) {
        if (model.shard().pp() == 1 || microBatches.size() == 1) {
            for (int i = 0; i < microBatches.size(); i++) {
                TokenStats stats = forward(microBatches.get(i), false);
                backward(loss.dLogprobs(i, stats), null);
            }
            return;
        }
        List<TokenStats> stats = model.forward(microBatches, false, true);
        List<float[]> d = new ArrayList<>(stats.size());
        for (int i = 0; i < stats.size(); i++) {
            d.add(loss.dLogprobs(i, stats.get(i)));
        }
        model.backward(d, null);
    }

    /**
     * Forward-only log-probs of several micro-batches, one {@link TokenStats} each: with pipeline
     * stages they run through the pipeline together (stage s works on micro-batch i while stage
     * s + 1 works on i - 1), else one after the other. No backward follows, so no layer's activations
     * are kept; what is allocated is released at the end.
     */
    public List<TokenStats> forward(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.forward(b, false, false));
    }

    /** {@link #values(Batch)} of several micro-batches, forward only, as {@link #forward(List)}. */
    public List<float[]> values(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.values(b, false));
    }

    /** {@link #scores(Batch)} of several micro-batches, forward only, as {@link #forward(List)}. */
    public List<float[]> scores(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.scores(b, false));
    }

    private <T> List<T> forwardOnly(List<Batch> microBatches, Function<List<Batch>, List<T>> pass) {
        if (microBatches.isEmpty()) {
            return List.of();
        }
        try {
            if (model.shard().pp() > 1) {
                return pass.apply(microBatches);
            }
            List<T> out = new ArrayList<>(microBatches.size());
            for (Batch b : microBatches) {
                out.addAll(pass.apply(List.of(b)));
                // without stages to overlap, keep one forward's activations: drop them before the next micro-batch
                model.releaseActivations();
            }
            return out;
        } finally {
            releaseActivations();
        }
    }

    public void releaseActivations() {
        model.releaseActivations();
    }

    public void zeroGradients() {
        model.zeroGradients();
    }

    /** This copy's gradients by Hugging Face name, in the model's parameter order (the same on every replica). */
    /** Sums this copy's gradients over its data-parallel group (see {@link LlamaModel#allReduceGradients}). */
    public void allReduceGradients(Communicator dataGroup) {
        model.allReduceGradients(dataGroup);
    }

    public Map<String, Tensor> gradients() {
        return model.gradients().byName();
    }

    public GenerationResult generate(int[][] prompts, int[] sequenceIds, Generator.Options options) {
        return generate(Collections.singletonList(prompts), Collections.singletonList(sequenceIds), options).get(0);
    }

    /**
     * Generation in micro-batches ({@code prompts.get(i)} with {@code sequenceIds.get(i)}), one after
     * the other: the generator does not pipeline decode steps across micro-batches, so on a shard the
     * micro-batches bound the decode state's memory but do not overlap stages. The generator keeps
     * its decode buffers from one micro-batch to the next when they fit.
     */
    public List<GenerationResult> generate(List<int[][]> prompts,
                                                     List<int[]> sequenceIds, Generator.Options options) {
        if (prompts.size() != sequenceIds.size()) {
            throw new IllegalArgumentException(prompts.size() + " micro-batches of prompts and " + sequenceIds.size()
                    + " of sequence ids");
        }
        List<GenerationResult> out = new ArrayList<>(prompts.size());
        try (Generator generator = new Generator(model)) {
            for (int i = 0; i < prompts.size(); i++) {
                out.add(generator.generate(prompts.get(i), sequenceIds.get(i), options));
            }
        }
        return out;
    }

    /** One optimizer step (a shard's clips by the whole model's gradient norm); advances the version. */
    public AdamW.StepInfo step() {
        AdamW.StepInfo info = optimizer().step();
        version++;
        return info;
    }

    public long version() {
        return version;
    }

    /** A parameter as this copy holds it: the whole tensor, or this shard's slice. */
    @Override
    public float[] tensor(String name) {
        return tensor(name, View.WEIGHTS);
    }

    /**
     * A parameter's weights or AdamW moment as this copy holds it (whole, or this shard's slice: the
     * moments have their parameter's shape); the moments only on a trained copy.
     */
    @Override
    public float[] tensor(String name, View view) {
        return model.backend().download(held(name, view));
    }

    /** The weights or moments on the model's backend, read by ranges (a reallocation's source moves no whole tensor to the host). */
    @Override
    public ShardSlices slices(View view) {
        return ShardSlices.ofTensors(model.backend(), name -> held(name, view));
    }

    /** The tensor of a parameter's weights or moment, on the model's backend. */
    private Tensor held(String name, View view) {
        if (view == View.WEIGHTS) {
            Tensor t = model.parameters().byName().get(name);
            if (t == null) {
                throw new IllegalArgumentException("shard " + model.shard().label() + " holds no part of '" + name + "'");
            }
            return t;
        }
        if (!hasOptimizer()) {
            throw new IllegalStateException("this copy of the model has no optimizer (it is not trained), so no "
                    + view + " of '" + name + "'");
        }
        for (AdamW.Param p : optimizer.params()) {
            if (p.name().equals(name)) {
                return view == View.EXP_AVG ? p.m() : p.v();
            }
        }
        throw new IllegalArgumentException((isSharded() ? "shard " + model.shard().label() : "this copy")
                + "'s optimizer holds no part of '" + name + "'");
    }

    /** Whether this copy is trained here (it has an optimizer). */
    public boolean hasOptimizer() {
        return optimizer != null;
    }

    /**
     * Restores this copy's optimizer state from a whole model's {@code optimizer.safetensors}, each
     * moment cut to the copy's slice (see {@link OptimizerState#load(AdamW, Path,
     * org.sparkrlhf.gpuexec.model.ModelConfig, org.sparkrlhf.gpuexec.parallel.ShardSpec)}).
     */
    void loadOptimizerState(Path file) {
        OptimizerState.load(optimizer(), file, model.config(), model.shard());
    }

    void advance() {
        version++;
    }

    @Override
    public void close() {
        if (optimizer != null) {
            optimizer.close();
        }
        model.close();
    }
}
