package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.parallel.ShardedAdamW;
import org.sparkrlhf.gpuexec.parallel.ShardedGenerator;
import org.sparkrlhf.gpuexec.parallel.ShardedLlama;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.OptimizerState;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A model replica or shard kept in an executor's {@link ModelStore}: the engine's model (a whole
 * {@link LlamaModel} on a data-parallel layout, or this rank's {@link ShardedLlama} shard under
 * tensor / pipeline parallelism), its optimizer when this copy is trained, and the parameter version
 * (training steps applied). The calls use it through {@link #forward}, {@link #backward},
 * {@link #generate} and {@link #step}, which work on both; a sharded copy must first be bound to the
 * call's groups ({@link #bind}).
 */
public final class ResidentModel implements ShardTensors, AutoCloseable {
    private final LlamaModel model;
    private final AdamW optimizer;
    private final ShardedLlama sharded;
    private final ShardedAdamW shardedOptimizer;
    private final BoundCollective tensorGroup;
    private final BoundCollective pipelineGroup;
    private long version;

    public ResidentModel(LlamaModel model, AdamW optimizer, long version) {
        this.model = model;
        this.optimizer = optimizer;
        this.sharded = null;
        this.shardedOptimizer = null;
        this.tensorGroup = null;
        this.pipelineGroup = null;
        this.version = version;
    }

    private ResidentModel(ShardedLlama sharded, ShardedAdamW optimizer, BoundCollective tensorGroup,
                          BoundCollective pipelineGroup, long version) {
        this.model = null;
        this.optimizer = null;
        this.sharded = sharded;
        this.shardedOptimizer = optimizer;
        this.tensorGroup = tensorGroup;
        this.pipelineGroup = pipelineGroup;
        this.version = version;
    }

    /** A tensor / pipeline shard built on stand-in groups (see {@link BoundCollective}). */
    static ResidentModel sharded(ShardedLlama sharded, ShardedAdamW optimizer, BoundCollective tensorGroup,
                                 BoundCollective pipelineGroup, long version) {
        return new ResidentModel(sharded, optimizer, tensorGroup, pipelineGroup, version);
    }

    public boolean isSharded() {
        return sharded != null;
    }

    /** The whole model; an error for a tensor / pipeline shard (use the methods of this class). */
    public LlamaModel model() {
        if (model == null) {
            throw new IllegalStateException("this copy is a tensor/pipeline shard (" + sharded.shard().label()
                    + "), not a whole model");
        }
        return model;
    }

    /** The optimizer; an error for copies that are only used for inference. */
    public AdamW optimizer() {
        if (!hasOptimizer()) {
            throw new IllegalStateException("this copy of the model has no optimizer (it is not trained)");
        }
        return optimizer != null ? optimizer : shardedOptimizer.optimizer();
    }

    /** Binds a shard's tensor and pipeline groups to this call's (every rank of the call, at its start). */
    public void bind(RankContext context) {
        if (sharded == null) {
            return;
        }
        if (tensorGroup.size() > 1) {
            tensorGroup.bind(context.tensorGroup());
        }
        if (pipelineGroup.size() > 1) {
            pipelineGroup.bind(context.pipelineGroup());
        }
    }

    public Backend backend() {
        return model != null ? model.backend() : sharded.backend();
    }

    /** The model's configuration (the whole model's, also on a shard). */
    public org.sparkrlhf.gpuexec.model.ModelConfig config() {
        return model != null ? model.config() : sharded.config();
    }

    /** A value model's value at every position (a shard's come from the last stage, on every rank). */
    public float[] values(Batch batch) {
        return model != null ? model.values(batch) : sharded.values(batch);
    }

    /** The backward of {@link #values} from dLoss/dValue into this copy's gradients. */
    public void backwardValues(float[] dValues) {
        if (model != null) {
            model.backwardValues(dValues);
        } else {
            sharded.backwardValues(dValues);
        }
    }

    /** A sequence-classification model's score of each row (at its last non-pad token). */
    public float[] scores(Batch batch) {
        return model != null ? model.scores(batch) : sharded.scores(batch);
    }

    /** The backward of {@link #scores} from dLoss/dScore [B] into this copy's gradients. */
    public void backwardScores(float[] dScores) {
        if (model != null) {
            model.backwardScores(dScores);
        } else {
            sharded.backwardScores(dScores);
        }
    }

    public TokenStats forward(Batch batch, boolean withEntropy) {
        return model != null ? model.forward(batch, withEntropy) : sharded.forward(batch, withEntropy);
    }

    public void backward(float[] dLogprobs, float[] dEntropies) {
        if (model != null) {
            model.backward(dLogprobs, dEntropies);
        } else {
            sharded.backward(dLogprobs, dEntropies);
        }
    }

    /** What a training loss makes of one micro-batch's forward: dLoss/dLogprob for its backward. */
    @FunctionalInterface
    public interface MicroBatchLoss {
        float[] dLogprobs(int microBatch, TokenStats stats);
    }

    /**
     * Forward and backward over micro-batches whose gradients add up: a shard runs them GPipe-style
     * (every forward, then every backward, so pipeline stages overlap), a whole model one after the
     * other (it keeps one forward's activations). The same sums either way.
     */
    public void forwardBackward(List<Batch> microBatches, MicroBatchLoss loss) {
        if (sharded == null || microBatches.size() == 1) {
            for (int i = 0; i < microBatches.size(); i++) {
                TokenStats stats = forward(microBatches.get(i), false);
                backward(loss.dLogprobs(i, stats), null);
            }
            return;
        }
        List<TokenStats> stats = sharded.forward(microBatches, false);
        List<float[]> d = new ArrayList<>(stats.size());
        for (int i = 0; i < stats.size(); i++) {
            d.add(loss.dLogprobs(i, stats.get(i)));
        }
        sharded.backward(d, null);
    }

    /**
     * Forward-only log-probs of several micro-batches, one {@link TokenStats} each: a shard runs
     * them through its pipeline together (stage s works on micro-batch i while stage s + 1 works on
     * i - 1), a whole model one after the other. Activations are released at the end.
     */
    public List<TokenStats> forward(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.forward(b, false), b -> sharded.forward(b, false));
    }

    /** {@link #values(Batch)} of several micro-batches, forward only, as {@link #forward(List)}. */
    public List<float[]> values(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.values(b), b -> sharded.values(b));
    }

    /** {@link #scores(Batch)} of several micro-batches, forward only, as {@link #forward(List)}. */
    public List<float[]> scores(List<Batch> microBatches) {
        return forwardOnly(microBatches, b -> model.scores(b), b -> sharded.scores(b));
    }

    private <T> List<T> forwardOnly(List<Batch> microBatches,
                                              Function<Batch, T> whole,
                                              Function<List<Batch>, List<T>> shard) {
        if (microBatches.isEmpty()) {
            return List.of();
        }
        try {
            if (sharded != null) {
                return shard.apply(microBatches);
            }
            List<T> out = new ArrayList<>(microBatches.size());
            for (Batch b : microBatches) {
                out.add(whole.apply(b));
                // a whole model keeps one forward's activations: drop them before the next micro-batch
                model.releaseActivations();
            }
            return out;
        } finally {
            releaseActivations();
        }
    }

    public void releaseActivations() {
        if (model != null) {
            model.releaseActivations();
        } else {
            sharded.releaseActivations();
        }
    }

    public void zeroGradients() {
        if (model != null) {
            model.zeroGradients();
        } else {
            sharded.zeroGradients();
        }
    }

    /** This copy's gradients by Hugging Face name, in the model's parameter order (the same on every replica). */
    public Map<String, Tensor> gradients() {
        if (sharded != null) {
            return sharded.gradients();
        }
        LlamaWeights grads = model.gradients();
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : grads.specs()) {
            out.put(s.name(), grads.get(s.name()));
        }
        return out;
    }

    public GenerationResult generate(int[][] prompts, int[] sequenceIds, Generator.Options options) {
        return generate(Collections.singletonList(prompts), Collections.singletonList(sequenceIds), options).get(0);
    }

    /**
     * Generation in micro-batches ({@code prompts.get(i)} with {@code sequenceIds.get(i)}), one after
     * the other: neither generator pipelines decode steps across micro-batches, so on a shard the
     * micro-batches bound the decode state's memory but do not overlap stages. A whole model's
     * generator keeps its decode buffers from one micro-batch to the next when they fit.
     */
    public List<GenerationResult> generate(List<int[][]> prompts,
                                                     List<int[]> sequenceIds, Generator.Options options) {
        if (prompts.size() != sequenceIds.size()) {
            throw new IllegalArgumentException(prompts.size() + " micro-batches of prompts and " + sequenceIds.size()
                    + " of sequence ids");
        }
        List<GenerationResult> out = new ArrayList<>(prompts.size());
        if (sharded != null) {
            ShardedGenerator generator = new ShardedGenerator(sharded);
            for (int i = 0; i < prompts.size(); i++) {
                out.add(generator.generate(prompts.get(i), sequenceIds.get(i), options));
            }
            return out;
        }
        try (Generator generator = new Generator(model)) {
            for (int i = 0; i < prompts.size(); i++) {
                out.add(generator.generate(prompts.get(i), sequenceIds.get(i), options));
            }
        }
        return out;
    }

    /** One optimizer step (a shard's clips by the whole model's gradient norm); advances the version. */
    public AdamW.StepInfo step() {
        AdamW.StepInfo info = shardedOptimizer != null ? shardedOptimizer.step() : optimizer().step();
        version++;
        return info;
    }

    public long version() {
        return version;
    }

    /** A parameter as this copy holds it: the whole tensor, or this shard's slice. */
    @Override
    public float[] tensor(String name) {
        if (sharded != null) {
            Tensor t = sharded.parameters().get(name);
            if (t == null) {
                throw new IllegalArgumentException("shard " + sharded.shard().label() + " holds no part of '" + name + "'");
            }
            return sharded.backend().download(t);
        }
        return model.backend().download(model.parameters().get(name));
    }

    /**
     * A parameter's weights or AdamW moment as this copy holds it (whole, or this shard's slice: the
     * moments have their parameter's shape); the moments only on a trained copy.
     */
    @Override
    public float[] tensor(String name, View view) {
        if (view == View.WEIGHTS) {
            return tensor(name);
        }
        if (!hasOptimizer()) {
            throw new IllegalStateException("this copy of the model has no optimizer (it is not trained), so no "
                    + view + " of '" + name + "'");
        }
        AdamW adamw = optimizer();
        for (AdamW.Param p : adamw.params()) {
            if (p.name().equals(name)) {
                return adamw.backend().download(view == View.EXP_AVG ? p.m() : p.v());
            }
        }
        throw new IllegalArgumentException((sharded != null ? "shard " + sharded.shard().label() : "this copy")
                + "'s optimizer holds no part of '" + name + "'");
    }

    /** Whether this copy is trained here (it has an optimizer). */
    public boolean hasOptimizer() {
        return optimizer != null || shardedOptimizer != null;
    }

    /**
     * Restores this shard's optimizer state from a whole model's {@code optimizer.safetensors}
     * (each moment cut to the shard's slice, see {@link ShardedAdamW#load}); a whole copy's
     * optimizer loads it as it is.
     */
    void loadOptimizerState(Path file) {
        if (shardedOptimizer != null) {
            shardedOptimizer.load(file);
        } else {
            OptimizerState.load(optimizer(), file);
        }
    }

    void advance() {
        version++;
    }

    @Override
    public void close() {
        if (optimizer != null) {
            optimizer.close();
        }
        if (shardedOptimizer != null) {
            shardedOptimizer.close();
        }
        if (model != null) {
            model.close();
        } else {
            sharded.close();
        }
    }
}
