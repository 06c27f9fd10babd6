package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.checkpoint.AtomicFiles;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.parallel.Collective;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.parallel.Sharding;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A LLaMA-family decoder (Llama, Qwen2, Mistral) with a causal LM head or a scalar score head,
 * written only against {@link Backend} ops, so it runs on every backend. An instance is one rank's
 * shard under tensor (tp) and pipeline (pp) parallelism ({@link ShardSpec}); the whole model is
 * the shard tp = pp = 1 with {@link Collective#single()} groups, where no communication happens.
 *
 * <p>Training is data flow: {@link #forward} gives per-token logprobs (and entropies) of the next
 * tokens, the caller's loss turns them into dLoss/dLogprob (and dLoss/dEntropy) per token, and
 * {@link #backward} adds the parameter gradients to {@link #gradients()}. Gradients accumulate
 * over calls until {@link #zeroGradients()}: with micro-batches, the caller scales each micro-batch's
 * dLoss so that their sum is the gradient of the whole batch's loss (e.g. divide by the token count
 * of the whole batch, not of the micro-batch). Score models ({@link #scores}, {@link #values}) work
 * the same way with dLoss/dScore or dLoss/dValue. A backward uses the activations saved by the last
 * forward, which must have been a forward of the same head kind.
 *
 * <p><b>Tensor parallelism</b> (Megatron-LM's scheme, over the tensor group): q/k/v, gate and up
 * are column-parallel (each rank computes its heads / intermediate features), o_proj and down_proj
 * row-parallel (each rank multiplies its input features, the partial outputs are all-reduced, the
 * replicated bias added once, by tensor rank 0). In the backward the input gradients of the
 * column-parallel layers are partial sums and are all-reduced before the norm's backward. The
 * embedding is vocabulary-parallel (a rank looks up the ids in its vocabulary range, zero for the
 * others, then all-reduce) and so is the LM head: each rank computes its vocabulary columns of the
 * logits, they are all-gathered so every rank computes the same log-softmax, and each rank
 * back-propagates its own columns. Norms and the score head are replicated.
 *
 * <p><b>Pipeline parallelism</b> (over the pipeline group, whose rank is the stage): stage s runs
 * layers [floor(s L / pp), floor((s + 1) L / pp)), receives the hidden states [B, T, C] from stage
 * s - 1 and sends its output to s + 1; the backward sends the gradient of its input back. A call
 * with several micro-batches is scheduled GPipe-style: every micro-batch's forward (its activations
 * kept), then every micro-batch's backward, in micro-batch order. The results (logprobs,
 * entropies, values, scores) are broadcast from the last stage, so every rank returns them.
 *
 * <p><b>Tied embeddings</b> with pp &gt; 1: stage 0 and the last stage each hold the (vocab-split)
 * embedding; each accumulates the gradient of its own use privately and after every backward
 * the two exchange them, so both copies' gradient is the full gradient (head use + embedding use)
 * and an optimizer step keeps them equal. Data-parallel gradient all-reduces belong after the
 * last backward of a step.
 *
 * <p>Every rank of the model-parallel group must make the same calls with the same arguments
 * (batches, dLoss arrays), as with collective communication generally.
 */
public final class LlamaModel implements AutoCloseable {
    private static final String EMBED = "model.embed_tokens.weight";

    private final Backend backend;
    private final ModelConfig config;
    private final ShardSpec shard;
    private final ParallelGroups groups;
    private final int firstLayer, numLocal, heads, kvHeads, qDim, kvDim, inter;
    private final LlamaWeights params;
    private final Tensor invFreq;
    private LlamaWeights grads;
    /** With tied embeddings across stages: this copy's own use's gradient, summed with the other copy's after a backward. */
    private Tensor tiedOwnGrad;

    private enum Kind { LOGPROBS, VALUES, SCORES }

    private final List<Activations> acts = new ArrayList<>();
    /** Tokens one inference-only pass (a forward no backward follows, a prefill) runs at most; see {@link #maxTokensPerPass(int)}. */
    private int maxTokensPerPass = DEFAULT_MAX_TOKENS_PER_PASS;
    private List<Batch> lastBatches;
    private Kind lastKind;
    private boolean lastHadEntropy;

    private LlamaModel(Backend backend, ModelConfig config, ShardSpec shard, ParallelGroups groups, LlamaWeights params) {
        this.backend = backend;
        this.config = config;
        this.shard = shard;
        this.groups = groups;
        this.firstLayer = shard.firstLayer(config.numLayers());
        this.numLocal = shard.endLayer(config.numLayers()) - firstLayer;
        this.heads = config.numHeads() / shard.tp();
        this.kvHeads = config.numKvHeads() / shard.tp();
        this.qDim = heads * config.headDim();
        this.kvDim = kvHeads * config.headDim();
        this.inter = shard.partEnd(config.intermediateSize()) - shard.partStart(config.intermediateSize());
        this.params = params;
        this.invFreq = backend.allocate(DType.F32, config.headDim() / 2);
        backend.upload(invFreq, config.rope().inverseFrequencies(config.ropeTheta(), config.headDim()));
    }

    // ---------------------------------------------------------------- creation, loading, saving

    /** Checks that a config can be cut into a shard (before anything is allocated). */
    private static void checkCut(ModelConfig config, ShardSpec shard) {
        int tp = shard.tp();
        if (config.numHeads() % tp != 0 || config.numKvHeads() % tp != 0) {
            throw new IllegalArgumentException("tp " + tp + " must divide the " + config.numHeads() + " attention heads and the "
                    + config.numKvHeads() + " key/value heads (cuts between heads)");
        }
        if (shard.pp() > config.numLayers()) {
            throw new IllegalArgumentException("pp " + shard.pp() + " is more than the " + config.numLayers() + " layers");
        }
        if (config.vocabSize() < tp || config.intermediateSize() < tp) {
            throw new IllegalArgumentException("tp " + tp + " is more than the vocabulary or intermediate size");
        }
    }

    /** A model whose parameters are filled by {@code fill} (given each tensor's spec; F32 values of its shape). */
    private static LlamaModel build(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup, Collective ppGroup,
                                    DType dtype, java.util.function.Function<LlamaWeights.Spec, float[]> fill) {
        checkCut(config, shard);
        ParallelGroups groups = new ParallelGroups(backend, config, shard, tpGroup, ppGroup);
        LlamaWeights params = LlamaWeights.allocate(backend, config, shard, dtype);
        try {
            for (LlamaWeights.Spec s : params.specs()) {
                Tensor t = params.get(s.name());
                float[] v = fill.apply(s);
                if (v.length != t.numel()) {
                    throw new IllegalArgumentException(shard.label() + ": '" + s.name() + "' has " + v.length + " values, its shard shape "
                            + Arrays.toString(s.shape()) + " needs " + t.numel());
                }
                backend.upload(t, v);
            }
        } catch (RuntimeException e) {
            params.free(backend);
            throw e;
        }
        return new LlamaModel(backend, config, shard, groups, params);
    }

    /** Loads config.json and the safetensors weights of a Hugging Face model directory, in F32. */
    public static LlamaModel load(Backend backend, Path dir) {
        return load(backend, dir, DType.F32);
    }

    /** Loads a model directory, storing parameters as {@code dtype} (F32 or BF16). */
    public static LlamaModel load(Backend backend, Path dir, DType dtype) {
        return load(backend, dir, dtype, ShardSpec.WHOLE, Collective.single(), Collective.single());
    }

    /**
     * Shard {@code shard} of a Hugging Face model directory (config.json and safetensors), in F32,
     * reading one full tensor at a time and keeping only this shard's slice of it.
     */
    public static LlamaModel load(Backend backend, Path dir, ShardSpec shard, Collective tpGroup, Collective ppGroup) {
        return load(backend, dir, DType.F32, shard, tpGroup, ppGroup);
    }

    private static LlamaModel load(Backend backend, Path dir, DType dtype, ShardSpec shard, Collective tpGroup, Collective ppGroup) {
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        CheckpointWeights weights = CheckpointWeights.open(dir);
        Map<String, int[]> whole = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) whole.put(s.name(), s.shape());
        return build(backend, config, shard, tpGroup, ppGroup, dtype, s -> {
            if (!weights.has(s.name())) {
                throw new CheckpointException(dir + ": the checkpoint has no tensor '" + s.name() + "' that " + config.architecture() + " needs");
            }
            int[] shape = whole.get(s.name());
            float[] full = weights.floats(s.name(), shape);
            return shard.tp() == 1 ? full : Sharding.slice(s.name(), shape, full, shard);
        });
    }

    /** A model with random weights (normal with standard deviation std for matrices, 1 for norms, 0 for biases). */
    public static LlamaModel random(Backend backend, ModelConfig config, DType dtype, long seed, float std) {
        SplittableRandom rng = new SplittableRandom(seed);
        return build(backend, config, ShardSpec.WHOLE, Collective.single(), Collective.single(), dtype, s -> {
            int n = 1;
            for (int d : s.shape()) n *= d;
            float[] v = new float[n];
            if (s.name().endsWith("norm.weight")) Arrays.fill(v, 1f);
            else if (!s.name().endsWith(".bias")) {
                for (int i = 0; i < v.length; i += 2) {
                    double u1 = 1.0 - rng.nextDouble(), u2 = rng.nextDouble();
                    double r = Math.sqrt(-2 * Math.log(u1)) * std;
                    v[i] = (float) (r * Math.cos(2 * Math.PI * u2));
                    if (i + 1 < v.length) v[i + 1] = (float) (r * Math.sin(2 * Math.PI * u2));
                }
            }
            return v;
        });
    }

    /**
     * A shard from its tensors (Hugging Face names, this shard's shapes, see {@link Sharding#specs}),
     * stored as F32. tpGroup's rank must be the tensor rank, ppGroup's rank the stage.
     */
    public static LlamaModel ofShard(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup, Collective ppGroup,
                                     Map<String, float[]> shardTensors) {
        return build(backend, config, shard, tpGroup, ppGroup, DType.F32, s -> {
            float[] v = shardTensors.get(s.name());
            if (v == null) throw new IllegalArgumentException(shard.label() + ": the shard tensors have no '" + s.name() + "'");
            return v;
        });
    }

    /**
     * The parameter tensors of shard {@code shard} of a model of {@code config}, allocated (zeros)
     * on {@code backend} in {@code dtype}, to be filled in place (a reallocation receives its pieces
     * straight into them) and then made a model with {@link #over}.
     */
    public static LlamaWeights allocateShard(Backend backend, ModelConfig config, ShardSpec shard, DType dtype) {
        checkCut(config, shard);
        return LlamaWeights.allocate(backend, config, shard, dtype);
    }

    /**
     * The shard over parameters already on {@code backend} and filled (see {@link #allocateShard});
     * the model owns them from here (closing it frees them). tpGroup's rank must be the tensor rank,
     * ppGroup's rank the stage.
     */
    public static LlamaModel over(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup,
                                  Collective ppGroup, LlamaWeights params) {
        checkCut(config, shard);
        List<LlamaWeights.Spec> want = Sharding.specs(config, shard);
        if (want.size() != params.specs().size()) {
            throw new IllegalArgumentException(shard.label() + ": " + params.specs().size() + " parameters given, the shard has "
                    + want.size());
        }
        for (int i = 0; i < want.size(); i++) {
            LlamaWeights.Spec w = want.get(i), g = params.specs().get(i);
            if (!w.name().equals(g.name()) || !Arrays.equals(w.shape(), g.shape())) {
                throw new IllegalArgumentException(shard.label() + ": parameter " + i + " is '" + g.name() + "' "
                        + Arrays.toString(g.shape()) + ", the shard's is '" + w.name() + "' " + Arrays.toString(w.shape()));
            }
        }
        return new LlamaModel(backend, config, shard, new ParallelGroups(backend, config, shard, tpGroup, ppGroup), params);
    }

    /** Shard {@code shard} of a model given by its full tensors (Hugging Face names and shapes). */
    public static LlamaModel fromFull(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup,
                                      Collective ppGroup, Map<String, float[]> fullTensors) {
        return ofShard(backend, config, shard, tpGroup, ppGroup, Sharding.shard(config, fullTensors, shard));
    }

    /** Shard {@code shard} of a whole model's parameters. */
    public static LlamaModel shardOf(Backend backend, LlamaModel whole, ShardSpec shard, Collective tpGroup, Collective ppGroup) {
        whole.requireWhole("cutting a shard");
        return fromFull(backend, whole.config(), shard, tpGroup, ppGroup, whole.downloadParameters());
    }

    /**
     * Writes config.json and the weights (one model.safetensors, or shards of at most
     * maxShardBytes with model.safetensors.index.json) in Hugging Face's format.
     */
    public void save(Path dir, StDType dtype, long maxShardBytes) {
        requireWhole("save");
        if (!dtype.isFloat()) throw new IllegalArgumentException("weights are saved as float32, bfloat16 or float16, not " + dtype);
        List<SafeTensorsWriter.Item> items = new ArrayList<>();
        for (LlamaWeights.Spec s : params.specs()) {
            Tensor t = params.get(s.name());
            items.add(SafeTensorsWriter.Item.floats(s.name(), dtype, s.shape(), () -> backend.download(t)));
        }
        CheckpointWeights.write(dir, items, maxShardBytes);
        try {
            String json = new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(config.toJson(dtype.torchName()));
            AtomicFiles.writeString(dir.resolve("config.json"), json + "\n");
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---------------------------------------------------------------- accessors

    /** The whole model's configuration (also on a shard). */
    public ModelConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public ShardSpec shard() {
        return shard;
    }

    /** Whether this is the whole model (tp = pp = 1), not a part of one. */
    public boolean isWhole() {
        return shard.tp() == 1 && shard.pp() == 1;
    }

    /** Refuses a shard for what runs on the whole model only (saving, S3D). */
    void requireWhole(String what) {
        if (!isWhole()) throw new IllegalStateException(what + " needs the whole model, this is the shard " + shard.label());
    }

    public Collective tpGroup() {
        return groups.tp;
    }

    public Collective ppGroup() {
        return groups.pp;
    }

    /** The parameters this shard holds (Hugging Face order and names, shard shapes). */
    public LlamaWeights parameters() {
        return params;
    }

    /** The gradient table (same names and shapes as the parameters, F32), allocated on first use. */
    public LlamaWeights gradients() {
        if (grads == null) {
            grads = LlamaWeights.allocate(backend, config, shard, DType.F32);
            if (shard.tiedAcrossStages(config) && shard.holdsEmbedding(config)) {
                tiedOwnGrad = backend.allocate(DType.F32, params.get(EMBED).shape());
            }
        }
        return grads;
    }

    public void zeroGradients() {
        gradients().zero(backend);
        if (tiedOwnGrad != null) backend.zero(tiedOwnGrad);
    }

    public Map<String, float[]> downloadParameters() {
        return Sharding.download(backend, params.byName());
    }

    public Map<String, float[]> downloadGradients() {
        return Sharding.download(backend, gradients().byName());
    }

    /**
     * Whether a parameter's gradient counts in the global gradient norm on this rank: split
     * tensors on every tensor rank, replicated ones on tensor rank 0 only, and the tied copy of
     * the embedding on the last stage not at all (stage 0's copy counts).
     */
    public boolean countsInGlobalNorm(String name) {
        if (!params.byName().containsKey(name)) throw new IllegalArgumentException("this shard has no '" + name + "'");
        if (name.equals(EMBED) && !shard.firstStage()) return false;
        return Sharding.split(name) != Sharding.Split.REPLICATED || shard.tpRank() == 0;
    }

    /**
     * Data parallelism: replaces every gradient of this shard by its sum over {@code dataGroup}
     * (the ranks holding the same shard in the other data-parallel replicas), in parameter order so
     * that all replicas agree on the layout, with the group's tensor all-reduce (in place over NCCL
     * on GPUs, through host memory in bounded buckets elsewhere; never one buffer of the whole
     * model). Each replica's loss is already scaled by the whole batch's denominator, so the sum is
     * the whole batch's gradient. Call it after the last backward of a step, before the optimizer
     * step; every rank of the data group must call it.
     */
    public void allReduceGradients(Collective dataGroup) {
        if (dataGroup.size() == 1) return;
        dataGroup.allReduceSum(backend, new ArrayList<>(gradients().byName().values()));
    }

    int heads() {
        return heads;
    }

    int kvHeads() {
        return kvHeads;
    }

    int qDim() {
        return qDim;
    }

    int kvDim() {
        return kvDim;
    }

    int inter() {
        return inter;
    }

    int numLocalLayers() {
        return numLocal;
    }

    /** The model's index of local layer l. */
    int globalLayer(int l) {
        return firstLayer + l;
    }

    int vocabStart() {
        return groups.vocab0;
    }

    int vocabEnd() {
        return groups.vocab1;
    }

    ParallelGroups groups() {
        return groups;
    }

    /** The gradient of the embedding's own use: the private copy when the embedding is tied across stages. */
    private Tensor embedUseGradient() {
        return tiedOwnGrad != null ? tiedOwnGrad : grads.embed;
    }

    /** The gradient of the LM head: the private copy when the embedding is tied across stages. */
    private Tensor headGradient() {
        return tiedOwnGrad != null ? tiedOwnGrad : grads.lmHead;
    }

    // ---------------------------------------------------------------- the stage's trunk

    private Activations activations(int i, Batch b, boolean forBackward) {
        while (acts.size() <= i) acts.add(null);
        Activations a = acts.get(i);
        if (a == null || !a.fits(b.batch(), b.time(), forBackward)) {
            if (a != null) a.free();
            a = new Activations(this, b.batch(), b.time(), forBackward);
            acts.set(i, a);
        }
        return a;
    }

    /** Checks ids against the vocabulary; the message names the row, position and id. */
    void checkIds(Batch batch) {
        int V = config.vocabSize();
        for (int i = 0; i < batch.ids().length; i++) {
            int id = batch.ids()[i];
            if (id < 0 || id >= V) {
                throw new IllegalArgumentException("row " + i / batch.time() + ", position " + i % batch.time()
                        + ": token id " + id + " outside the vocabulary [0, " + V + ")");
            }
        }
    }

    /** Embedding (stage 0) or the previous stage's output, this stage's layers, then the next stage or the final norm (into a.lnf). */
    void trunk(Activations a, Batch batch) {
        trunk(a, batch, null);
    }

    /**
     * {@link #trunk} with edited rows (null: none): some rows of the embedding output replaced by
     * given vectors, some rows passed unchanged through a range of layers (S3D's draft).
     */
    void trunk(Activations a, Batch batch, RowEdits edits) {
        trunk(a, batch, edits, null);
    }

    /**
     * {@link #trunk(Activations, Batch, RowEdits)}, calling {@code afterLayer} (null: none) with the
     * local layer's index after each layer, while a buffer shared by the layers still holds that
     * layer's values (a prefill appends its keys and values to the cache there).
     */
    void trunk(Activations a, Batch batch, RowEdits edits, java.util.function.IntConsumer afterLayer) {
        checkIds(batch);
        backend.upload(a.mask, batch.mask());
        backend.upload(a.positions, batch.positions());
        if (shard.firstStage()) {
            a.inVocab = groups.embedTokens(a.residual[0], a.ids, batch.ids(), params.embed);
            if (edits != null) {
                zeroRows(a.residual[0], edits.inputRows(), edits.inputScratch());
                backend.gatherRowsBackward(a.residual[0], edits.inputs(), edits.inputRows());
            }
        } else {
            groups.recvFrom(shard.stage() - 1, a.residual[0]);
        }
        for (int l = 0; l < numLocal; l++) {
            final int layer = l;
            int window = config.slidingWindows()[firstLayer + l];
            Tensor bypass = edits != null && edits.bypasses(firstLayer + l) ? edits.bypassRows() : null;
            layer(l, new LayerBuffers(a.residual[l], a.ln1[l], a.rstd1[l], a.q[l], a.k[l], a.v[l], a.att[l], a.afterAttention[l],
                            a.ln2[l], a.rstd2[l], a.gate[l], a.up[l], a.swi[l], a.residual[l + 1]), a.positions,
                    () -> backend.attention(a.att[layer], a.lse[layer], a.q[layer], a.k[layer], a.v[layer], a.mask,
                            heads, kvHeads, window),
                    bypass, bypass == null ? null : edits.bypassScratch());
            if (afterLayer != null) afterLayer.accept(l);
        }
        if (!shard.lastStage()) groups.sendTo(shard.stage() + 1, a.residual[numLocal]);
        else backend.rmsnorm(a.lnf, a.rstdf, a.residual[numLocal], params.finalNorm, config.rmsNormEps());
    }

    /** The buffers of one decoder layer's forward over N rows (ln1 and ln2, rstd1 and rstd2 may be shared). */
    record LayerBuffers(Tensor in, Tensor ln1, Tensor rstd1, Tensor q, Tensor k, Tensor v, Tensor att, Tensor h,
                        Tensor ln2, Tensor rstd2, Tensor gate, Tensor up, Tensor swi, Tensor out) {
    }

    /**
     * Local decoder layer l: out = h + mlp(h), h = in + attention(in). {@code attention} reads the
     * rotated b.q, b.k, b.v and writes b.att (over the rows themselves, or a KV cache). Rows listed
     * in {@code bypassRows} leave the layer unchanged (out = in exactly: their two block outputs
     * are zeroed before the residual adds); scratch holds [rows, C].
     */
    void layer(int l, LayerBuffers b, Tensor positions, Runnable attention, Tensor bypassRows, Tensor scratch) {
        LlamaWeights.Layer w = params.layers[l];
        float eps = config.rmsNormEps();
        boolean biasHere = shard.tpRank() == 0;
        backend.rmsnorm(b.ln1(), b.rstd1(), b.in(), w.inputNorm(), eps);
        backend.matmuls(new Tensor[]{b.q(), b.k(), b.v()}, b.ln1(), new Tensor[]{w.q(), w.k(), w.v()},
                new Tensor[]{w.qBias(), w.kBias(), w.vBias()});
        backend.rotary(b.q(), positions, invFreq, heads);
        backend.rotary(b.k(), positions, invFreq, kvHeads);
        attention.run();
        backend.matmul(b.h(), b.att(), w.o(), biasHere ? w.oBias() : null);
        groups.allReduceTp(b.h());
        if (bypassRows != null) zeroRows(b.h(), bypassRows, scratch);
        backend.add(b.h(), b.h(), b.in());
        backend.rmsnorm(b.ln2(), b.rstd2(), b.h(), w.postNorm(), eps);
        backend.matmuls(new Tensor[]{b.gate(), b.up()}, b.ln2(), new Tensor[]{w.gate(), w.up()},
                new Tensor[]{w.gateBias(), w.upBias()});
        backend.swiglu(b.swi(), b.gate(), b.up());
        backend.matmul(b.out(), b.swi(), w.down(), biasHere ? w.downBias() : null);
        groups.allReduceTp(b.out());
        if (bypassRows != null) zeroRows(b.out(), bypassRows, scratch);
        backend.add(b.out(), b.out(), b.h());
    }

    /** t[rows] = 0 with existing ops: gather, negate, add back (x + -x is exactly 0). */
    void zeroRows(Tensor t, Tensor rows, Tensor scratch) {
        backend.gatherRows(scratch, t, rows);
        backend.scale(scratch, -1f);
        backend.gatherRowsBackward(t, scratch, rows);
    }

    /**
     * The backward of {@link #trunk}(a, batch, edits): from a.dLnf (last stage, set by the head's
     * backward) or the next stage's gradient, through this stage's layers, to the previous stage or
     * the embedding. With {@code parameterGradients} false no parameter gradient is computed (only
     * a.dResidual, which ends as the gradient of the embedding output: what a trained input vector
     * needs).
     */
    void trunkBackward(Activations a, RowEdits edits, boolean parameterGradients) {
        LlamaWeights g = parameterGradients ? gradients() : null;
        a.allocateBackward();
        backend.zero(a.dResidual);
        if (shard.lastStage()) {
            backend.rmsnormBackward(a.dResidual, g == null ? null : g.finalNorm, a.dLnf, a.residual[numLocal], params.finalNorm, a.rstdf);
        } else {
            groups.recvFrom(shard.stage() + 1, a.dResidual);
        }
        for (int l = numLocal - 1; l >= 0; l--) {
            LlamaWeights.Layer w = params.layers[l], gw = g == null ? null : g.layers[l];
            int window = config.slidingWindows()[firstLayer + l];
            Tensor bypass = edits != null && edits.bypasses(firstLayer + l) ? edits.bypassRows() : null;
            // MLP block: out = h + down(swiglu(gate(ln2), up(ln2))); a.dResidual holds dOut (the same on every tensor rank)
            backend.zero(a.dSwi);
            backend.matmulBackward(a.dSwi, gw == null ? null : gw.down(), gw == null ? null : gw.downBias(),
                    blockGradient(a, bypass, edits), a.swi[l], w.down());
            backend.zero(a.dGate);
            backend.zero(a.dUp);
            backend.swigluBackward(a.dGate, a.dUp, a.dSwi, a.gate[l], a.up[l]);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw == null ? null : gw.gate(), gw == null ? null : gw.gateBias(), a.dGate, a.ln2[l], w.gate());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.up(), gw == null ? null : gw.upBias(), a.dUp, a.ln2[l], w.up());
            groups.allReduceTp(a.dLn);
            backend.rmsnormBackward(a.dResidual, gw == null ? null : gw.postNorm(), a.dLn, a.afterAttention[l], w.postNorm(), a.rstd2[l]);
            // attention block: h = x + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))); a.dResidual holds dh
            backend.zero(a.dAtt);
            backend.matmulBackward(a.dAtt, gw == null ? null : gw.o(), gw == null ? null : gw.oBias(),
                    blockGradient(a, bypass, edits), a.att[l], w.o());
            backend.zero(a.dq);
            backend.zero(a.dk);
            backend.zero(a.dv);
            backend.attentionBackward(a.dq, a.dk, a.dv, a.dAtt, a.att[l], a.lse[l], a.q[l], a.k[l], a.v[l], a.mask,
                    heads, kvHeads, window);
            backend.rotaryBackward(a.dq, a.positions, invFreq, heads);
            backend.rotaryBackward(a.dk, a.positions, invFreq, kvHeads);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw == null ? null : gw.q(), gw == null ? null : gw.qBias(), a.dq, a.ln1[l], w.q());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.k(), gw == null ? null : gw.kBias(), a.dk, a.ln1[l], w.k());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.v(), gw == null ? null : gw.vBias(), a.dv, a.ln1[l], w.v());
            groups.allReduceTp(a.dLn);
            backend.rmsnormBackward(a.dResidual, gw == null ? null : gw.inputNorm(), a.dLn, a.residual[l], w.inputNorm(), a.rstd1[l]);
        }
        if (!shard.firstStage()) {
            groups.sendTo(shard.stage() - 1, a.dResidual);
        } else if (g != null) {
            // only the rows of ids in this rank's vocabulary range reach its embedding rows
            Tensor dOut = a.dResidual;
            boolean all = true;
            for (boolean b : a.inVocab) all &= b;
            if (!all) {
                backend.copy(a.dLn, a.dResidual);
                groups.zeroOutside(a.dLn, a.inVocab);
                dOut = a.dLn;
            }
            backend.embeddingBackward(embedUseGradient(), a.ids, dOut);
        }
    }

    /**
     * The gradient reaching a block's output: a.dResidual, or for a layer that bypasses rows a copy
     * with those rows zeroed (their block output was zeroed in the forward; the residual path
     * still carries their gradient).
     */
    private Tensor blockGradient(Activations a, Tensor bypass, RowEdits edits) {
        if (bypass == null) return a.dResidual;
        Tensor d = a.bypassGradient();
        backend.copy(d, a.dResidual);
        zeroRows(d, bypass, edits.bypassScratch());
        return d;
    }

    /** After a backward with tied embeddings across stages: both copies' gradient = head use + embedding use. */
    private void exchangeTiedGradients() {
        if (tiedOwnGrad != null) groups.sumTiedGradients(tiedOwnGrad, grads.embed);
    }

    // ---------------------------------------------------------------- the heads

    private void requireHead(ModelConfig.Head head, String what) {
        if (config.head() != head) {
            throw new IllegalStateException(what + " needs a " + head + " model, this is " + config.architecture());
        }
    }

    /** Logprobs (and, if asked, entropies) of each next token, the same on every rank; keeps the activations for {@link #backward}. */
    public TokenStats forward(Batch batch, boolean withEntropy) {
        return forward(List.of(batch), withEntropy, true).get(0);
    }

    /**
     * A forward of several micro-batches. With {@code forBackward} every layer's activations are
     * kept for one {@link #backward(List, List)}; without, a forward that only scores keeps one
     * layer's buffers, shared by all layers, runs in passes of at most {@link #maxTokensPerPass()}
     * tokens, and a backward is refused.
     */
    public List<TokenStats> forward(List<Batch> microBatches, boolean withEntropy, boolean forBackward) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "forward");
        for (Batch batch : microBatches) {
            if (batch.time() < 2) throw new IllegalArgumentException("a causal LM forward needs at least 2 tokens per row, got " + batch.time());
        }
        List<float[][]> results = runHead(microBatches, forBackward, (a, batch) -> {
            backend.matmul(a.localLogits, a.lnf, params.lmHead, null);
            groups.gatherLogits(a.logits, a.localLogits, a.N);
            backend.upload(a.targets, batch.nextTokens());
            backend.tokenLogprobs(a.logprobs, withEntropy ? a.entropy : null, a.tokenLse, a.logits, a.targets);
        }, (a, batch) -> {
            float[] lp = batch.dropLast(groups.fromLastStage(shard.lastStage() ? a.logprobs : null, a.N));
            float[] ent = withEntropy ? batch.dropLast(groups.fromLastStage(shard.lastStage() ? a.entropy : null, a.N)) : null;
            return new float[][]{lp, ent};
        });
        List<TokenStats> out = new ArrayList<>();
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            out.add(new TokenStats(batch.batch(), batch.time() - 1, results.get(i)[0], results.get(i)[1]));
        }
        lastKind = Kind.LOGPROBS;
        lastHadEntropy = withEntropy;
        return out;
    }

    /** The logits [B, T, V] of the last single-batch {@link #forward} (on the last stage). */
    public float[] logits() {
        if (lastBatches == null || lastKind != Kind.LOGPROBS || acts.isEmpty() || acts.get(0).logits == null) {
            throw new IllegalStateException("no forward has run on this stage");
        }
        return backend.download(acts.get(0).logits);
    }

    /**
     * Adds to the gradients the backward of the last single-batch {@link #forward} from
     * dLoss/dLogprob and dLoss/dEntropy per token ([B, T - 1] each; dEntropies may be null).
     */
    public void backward(float[] dLogprobs, float[] dEntropies) {
        backward(List.of(dLogprobs), dEntropies == null ? null : java.util.Collections.singletonList(dEntropies));
    }

    /** The backward of the last forward's micro-batches (dEntropies null, or one array (or null) per micro-batch). */
    public void backward(List<float[]> dLogprobs, List<float[]> dEntropies) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "backward");
        checkBackward(Kind.LOGPROBS, dLogprobs.size(), "backward");
        gradients(); // allocated before the head's gradient is looked up
        for (int i = 0; i < lastBatches.size(); i++) {
            Batch batch = lastBatches.get(i);
            Activations a = acts.get(i);
            a.allocateBackward();
            float[] dEnt = dEntropies == null ? null : dEntropies.get(i);
            if (dEnt != null && !lastHadEntropy) throw new IllegalStateException("dEntropies given but the forward did not compute entropies");
            float[] dLp = batch.padLast(dLogprobs.get(i), "dLogprobs of micro-batch " + i);
            float[] dEntPadded = dEnt == null ? null : batch.padLast(dEnt, "dEntropies of micro-batch " + i);
            if (shard.lastStage()) {
                backend.upload(a.dLogprobs, dLp);
                if (dEnt != null) backend.upload(a.dEntropy, dEntPadded);
                backend.zero(a.dLogits);
                backend.tokenLogprobsBackward(a.dLogits, a.dLogprobs, dEnt == null ? null : a.dEntropy,
                        a.logits, a.tokenLse, dEnt == null ? null : a.entropy, a.targets);
                groups.sliceLogitGradient(a.dLocalLogits, a.dLogits, a.N);
                backend.zero(a.dLnf);
                backend.matmulBackward(a.dLnf, headGradient(), null, a.dLocalLogits, a.lnf, params.lmHead);
                groups.allReduceTp(a.dLnf);
            }
            trunkBackward(a, null, true);
            freeScratchOfMany(a);
        }
        exchangeTiedGradients();
    }

    /** With several micro-batches kept, a backward's scratch is freed after use; one micro-batch keeps it for the next step. */
    private void freeScratchOfMany(Activations a) {
        if (lastBatches.size() > 1) a.freeBackward();
    }

    /** One scalar per position [B, T] (a critic's values), the same on every rank; keeps the activations for {@link #backwardValues}. */
    public float[] values(Batch batch) {
        return values(List.of(batch), true).get(0);
    }

    /** {@link #values(Batch)} of several micro-batches, their activations kept for a backward only {@code forBackward}. */
    public List<float[]> values(List<Batch> microBatches, boolean forBackward) {
        requireHead(ModelConfig.Head.SCORE, "values");
        List<float[][]> results = runHead(microBatches, forBackward,
                (a, batch) -> backend.matmul(a.values, a.lnf, params.score, null),
                (a, batch) -> new float[][]{groups.fromLastStage(shard.lastStage() ? a.values : null, batch.tokens())});
        lastKind = Kind.VALUES;
        return results.stream().map(r -> r[0]).toList();
    }

    /** Adds to the gradients the backward of the last {@link #values} from dLoss/dValue [B, T]. */
    public void backwardValues(float[] dValues) {
        backwardValues(List.of(dValues));
    }

    /** The backward of the last {@link #values} from dLoss/dValue [B, T] per micro-batch. */
    public void backwardValues(List<float[]> dValues) {
        requireHead(ModelConfig.Head.SCORE, "backwardValues");
        checkBackward(Kind.VALUES, dValues.size(), "backwardValues");
        LlamaWeights g = gradients();
        for (int i = 0; i < lastBatches.size(); i++) {
            Activations a = acts.get(i);
            float[] d = dValues.get(i);
            if (d.length != a.N) throw new IllegalArgumentException("dValues of micro-batch " + i + " has " + d.length + " values, expected " + a.N);
            a.allocateBackward();
            if (shard.lastStage()) {
                backend.upload(a.dValues, d);
                backend.zero(a.dLnf);
                backend.matmulBackward(a.dLnf, g.score, null, a.dValues, a.lnf, params.score);
            }
            trunkBackward(a, null, true);
            freeScratchOfMany(a);
        }
    }

    /**
     * The reward of each row: the score at its last token whose id is not the pad token (as
     * transformers' LlamaForSequenceClassification), the same on every rank; keeps the activations
     * for {@link #backwardScores}.
     */
    public float[] scores(Batch batch) {
        return scores(List.of(batch), true).get(0);
    }

    /** {@link #scores(Batch)} of several micro-batches, their activations kept for a backward only {@code forBackward}. */
    public List<float[]> scores(List<Batch> microBatches, boolean forBackward) {
        requireHead(ModelConfig.Head.SCORE, "scores");
        List<float[][]> results = runHead(microBatches, forBackward, (a, batch) -> {
            a.allocateScores();
            int[] last = batch.lastNonPad(config.padTokenId());
            int[] rows = new int[batch.batch()];
            for (int b = 0; b < rows.length; b++) rows[b] = b * batch.time() + last[b];
            backend.upload(a.scoreRows, rows);
            backend.gatherRows(a.scoreIn, a.lnf, a.scoreRows);
            backend.matmul(a.scoreOut, a.scoreIn, params.score, null);
        }, (a, batch) -> new float[][]{groups.fromLastStage(shard.lastStage() ? a.scoreOut : null, batch.batch())});
        lastKind = Kind.SCORES;
        return results.stream().map(r -> r[0]).toList();
    }

    /** Adds to the gradients the backward of the last {@link #scores} from dLoss/dScore [B]. */
    public void backwardScores(float[] dScores) {
        backwardScores(List.of(dScores));
    }

    /** The backward of the last {@link #scores} from dLoss/dScore [B] per micro-batch. */
    public void backwardScores(List<float[]> dScores) {
        requireHead(ModelConfig.Head.SCORE, "backwardScores");
        checkBackward(Kind.SCORES, dScores.size(), "backwardScores");
        LlamaWeights g = gradients();
        for (int i = 0; i < lastBatches.size(); i++) {
            Activations a = acts.get(i);
            float[] d = dScores.get(i);
            if (d.length != a.B) throw new IllegalArgumentException("dScores of micro-batch " + i + " has " + d.length + " values, expected " + a.B);
            a.allocateBackward();
            if (shard.lastStage()) {
                backend.upload(a.dScoreOut, d);
                backend.zero(a.dScoreIn);
                backend.matmulBackward(a.dScoreIn, g.score, null, a.dScoreOut, a.scoreIn, params.score);
                backend.zero(a.dLnf);
                backend.gatherRowsBackward(a.dLnf, a.dScoreIn, a.scoreRows);
            }
            trunkBackward(a, null, true);
            freeScratchOfMany(a);
        }
    }

    private void checkBackward(Kind kind, int count, String what) {
        if (lastBatches == null || lastKind != kind) throw new IllegalStateException(what + " without its forward (" + kind + ")");
        if (count != lastBatches.size()) {
            throw new IllegalArgumentException(what + ": " + count + " gradients for " + lastBatches.size() + " micro-batches");
        }
        for (int i = 0; i < lastBatches.size(); i++) {
            if (!acts.get(i).forBackward) {
                throw new IllegalStateException(what + " after an inference-only forward (it kept no activations for a backward)");
            }
        }
    }

    /**
     * A pass of 8192 tokens keeps its buffers (one layer's activations, the logits) to a few GB at
     * 7B sizes (about 0.5 MB a token, the fp32 logits of 32000 words most of it), while passes of
     * thousands of tokens keep a GPU's matrix products at full speed.
     */
    public static final int DEFAULT_MAX_TOKENS_PER_PASS = org.sparkrlhf.planner.cost.MemoryModel.MAX_TOKENS_PER_PASS;

    /**
     * Bounds the tokens of one inference-only pass: a forward that no backward follows and a
     * generator's prefill split their rows into passes of at most this many tokens (one row at
     * least), with the same results. Every rank of a shard must use the same bound.
     */
    public void maxTokensPerPass(int tokens) {
        if (tokens < 1) throw new IllegalArgumentException("max tokens per pass must be >= 1, got " + tokens);
        maxTokensPerPass = tokens;
    }

    public int maxTokensPerPass() {
        return maxTokensPerPass;
    }

    /** The rows of each batch split into passes of at most {@link #maxTokensPerPass} tokens, in order. */
    List<Batch> passes(List<Batch> batches) {
        List<Batch> out = new ArrayList<>();
        for (Batch b : batches) {
            int rows = Math.max(1, maxTokensPerPass / Math.max(1, b.time()));
            if (rows >= b.batch()) out.add(b);
            else for (int r = 0; r < b.batch(); r += rows) out.add(b.rows(r, Math.min(b.batch(), r + rows)));
        }
        return out;
    }

    /** What a head does over one pass's trunk output (into its buffers). */
    private interface HeadPass {
        void run(Activations a, Batch b);
    }

    /** What a head's results of one pass are, on every rank: row-major arrays, each split by rows. */
    private interface HeadRead {
        float[][] read(Activations a, Batch b);
    }

    /**
     * The trunk and a head over micro-batches, each micro-batch's results as row-major arrays.
     * When a backward follows, micro-batch i keeps its own buffers (slot i). When none does, the
     * rows are split into {@link #passes} and, on one stage, every pass reuses slot 0's buffers
     * and is read right after it ran (the other slots are freed); with pipeline stages each pass
     * has its slot, so that stage s works on pass i while stage s + 1 works on pass i - 1.
     */
    private List<float[][]> runHead(List<Batch> microBatches, boolean forBackward, HeadPass head, HeadRead read) {
        List<Batch> passes = forBackward ? microBatches : passes(microBatches);
        boolean reuse = !forBackward && shard.pp() == 1;
        if (reuse) {
            while (acts.size() > 1) {
                Activations extra = acts.remove(acts.size() - 1);
                if (extra != null) extra.free();
            }
        }
        List<float[][]> perPass = new ArrayList<>();
        for (int i = 0; i < passes.size(); i++) {
            Batch batch = passes.get(i);
            Activations a = activations(reuse ? 0 : i, batch, forBackward);
            trunk(a, batch);
            if (shard.lastStage()) head.run(a, batch);
            if (reuse) perPass.add(read.read(a, batch));
        }
        if (!reuse) for (int i = 0; i < passes.size(); i++) perPass.add(read.read(acts.get(i), passes.get(i)));
        lastBatches = reuse ? List.of(passes.get(passes.size() - 1)) : List.copyOf(passes);
        if (passes.size() == microBatches.size()) return perPass;
        List<float[][]> out = new ArrayList<>();
        int p = 0;
        for (Batch b : microBatches) {
            List<float[][]> parts = new ArrayList<>();
            for (int rows = 0; rows < b.batch(); p++) {
                parts.add(perPass.get(p));
                rows += passes.get(p).batch();
            }
            float[][] joined = new float[parts.get(0).length][];
            for (int k = 0; k < joined.length; k++) {
                if (parts.get(0)[k] == null) continue;
                List<float[]> column = new ArrayList<>();
                for (float[][] part : parts) column.add(part[k]);
                joined[k] = concat(column);
            }
            out.add(joined);
        }
        return out;
    }

    private static float[] concat(List<float[]> parts) {
        int n = 0;
        for (float[] x : parts) n += x.length;
        float[] out = new float[n];
        int at = 0;
        for (float[] x : parts) {
            System.arraycopy(x, 0, out, at, x.length);
            at += x.length;
        }
        return out;
    }

    /** Frees the activations (kept between calls of the same shape). */
    public void releaseActivations() {
        for (Activations a : acts) if (a != null) a.free();
        acts.clear();
        lastBatches = null;
    }

    @Override
    public void close() {
        releaseActivations();
        params.free(backend);
        if (grads != null) grads.free(backend);
        if (tiedOwnGrad != null) backend.free(tiedOwnGrad);
        backend.free(invFreq);
    }
}
