package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One rank's shard of a LLaMA-family decoder under tensor (tp) and pipeline (pp) parallelism,
 * computing what {@link LlamaModel} computes (Megatron-LM's scheme, written with the same backend
 * ops and host-side communication).
 *
 * <p><b>Tensor parallelism</b> (inside a stage, over {@code tpGroup}): q/k/v, gate and up are
 * column-parallel (each rank computes its heads / intermediate features), o_proj and down_proj
 * row-parallel (each rank multiplies its input features, the partial outputs are all-reduced, the
 * replicated bias added once, by tensor rank 0). In the backward the input gradients of the
 * column-parallel layers are partial sums and are all-reduced before the norm's backward. The
 * embedding is vocabulary-parallel (a rank looks up the ids in its vocabulary range, zero for the
 * others, then all-reduce) and so is the LM head: each rank computes its vocabulary columns of the
 * logits, they are all-gathered so every rank computes the same log-softmax, and each rank
 * back-propagates its own columns. Norms and the score head are replicated and computed the same
 * on every tensor rank (their gradients are the same on every tensor rank).
 *
 * <p><b>Pipeline parallelism</b> (over {@code ppGroup}, whose rank is the stage): stage s runs
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
public final class ShardedLlama implements AutoCloseable {
    private static final String EMBED = "model.embed_tokens.weight";

    private final Backend backend;
    private final ModelConfig config;
    private final ShardSpec shard;
    private final Collective tpGroup, ppGroup;
    private final int firstLayer, numLocal;
    private final int heads, kvHeads, qDim, kvDim, inter, vocab0, vocab1;
    private final List<LlamaWeights.Spec> specs;
    private final Map<String, Tensor> params, grads;
    final LlamaWeights.Layer[] layers;
    private final LlamaWeights.Layer[] gradLayers;
    final Tensor embed, finalNorm, lmHead, score;
    private final Tensor gEmbedUse, gHead, gFinalNorm, gScore;
    /** With tied embeddings across stages: this copy's own use's gradient, summed with the other copy's after a backward. */
    private final Tensor tiedOwnGrad;
    final Tensor invFreq;

    private enum Kind { LOGPROBS, VALUES, SCORES }

    private final List<StageActivations> acts = new ArrayList<>();
    private List<Batch> lastBatches;
    private Kind lastKind;
    private boolean lastHadEntropy;

    /**
     * A shard from its tensors (Hugging Face names, this shard's shapes, see {@link Sharding#specs});
     * stored as F32. tpGroup's rank must be the tensor rank, ppGroup's rank the stage.
     */
    public ShardedLlama(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup, Collective ppGroup,
                        Map<String, float[]> shardTensors) {
        if (tpGroup.size() != shard.tp() || tpGroup.rank() != shard.tpRank()) {
            throw new IllegalArgumentException("the tensor-parallel group is rank " + tpGroup.rank() + " of " + tpGroup.size()
                    + ", the shard is " + shard.label());
        }
        if (ppGroup.size() != shard.pp() || ppGroup.rank() != shard.stage()) {
            throw new IllegalArgumentException("the pipeline group is rank " + ppGroup.rank() + " of " + ppGroup.size()
                    + ", the shard is " + shard.label());
        }
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
        this.backend = backend;
        this.config = config;
        this.shard = shard;
        this.tpGroup = tpGroup;
        this.ppGroup = ppGroup;
        this.firstLayer = shard.firstLayer(config.numLayers());
        this.numLocal = shard.endLayer(config.numLayers()) - firstLayer;
        this.heads = config.numHeads() / tp;
        this.kvHeads = config.numKvHeads() / tp;
        this.qDim = heads * config.headDim();
        this.kvDim = kvHeads * config.headDim();
        this.inter = shard.partEnd(config.intermediateSize()) - shard.partStart(config.intermediateSize());
        this.vocab0 = shard.partStart(config.vocabSize());
        this.vocab1 = shard.partEnd(config.vocabSize());
        this.specs = Sharding.specs(config, shard);
        Map<String, Tensor> p = new LinkedHashMap<>(), g = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : specs) {
            float[] v = shardTensors.get(s.name());
            if (v == null) throw new IllegalArgumentException(shard.label() + ": the shard tensors have no '" + s.name() + "'");
            Tensor t = backend.allocate(DType.F32, s.shape());
            if (v.length != t.numel()) {
                throw new IllegalArgumentException(shard.label() + ": '" + s.name() + "' has " + v.length + " values, its shard shape "
                        + Arrays.toString(s.shape()) + " needs " + t.numel());
            }
            backend.upload(t, v);
            p.put(s.name(), t);
            g.put(s.name(), backend.allocate(DType.F32, s.shape()));
        }
        this.params = Collections.unmodifiableMap(p);
        this.grads = Collections.unmodifiableMap(g);
        this.layers = new LlamaWeights.Layer[numLocal];
        this.gradLayers = new LlamaWeights.Layer[numLocal];
        for (int l = 0; l < numLocal; l++) {
            layers[l] = layer(p, firstLayer + l);
            gradLayers[l] = layer(g, firstLayer + l);
        }
        boolean lm = config.head() == ModelConfig.Head.CAUSAL_LM;
        this.embed = p.get(EMBED);
        this.finalNorm = p.get("model.norm.weight");
        this.score = p.get("score.weight");
        this.lmHead = !shard.lastStage() || !lm ? null : config.tieWordEmbeddings() ? embed : p.get("lm_head.weight");
        this.gFinalNorm = g.get("model.norm.weight");
        this.gScore = g.get("score.weight");
        if (shard.tiedAcrossStages(config) && shard.holdsEmbedding(config)) {
            tiedOwnGrad = backend.allocate(DType.F32, p.get(EMBED).shape());
            gEmbedUse = shard.firstStage() ? tiedOwnGrad : null;
            gHead = shard.lastStage() ? tiedOwnGrad : null;
        } else {
            tiedOwnGrad = null;
            gEmbedUse = g.get(EMBED);
            gHead = lmHead == null ? null : config.tieWordEmbeddings() ? g.get(EMBED) : g.get("lm_head.weight");
        }
        this.invFreq = backend.allocate(DType.F32, config.headDim() / 2);
        backend.upload(invFreq, config.rope().inverseFrequencies(config.ropeTheta(), config.headDim()));
    }

    /** Shard {@code shard} of a model given by its full tensors (Hugging Face names and shapes). */
    public static ShardedLlama fromFull(Backend backend, ModelConfig config, ShardSpec shard, Collective tpGroup,
                                        Collective ppGroup, Map<String, float[]> fullTensors) {
        return new ShardedLlama(backend, config, shard, tpGroup, ppGroup, Sharding.shard(config, fullTensors, shard));
    }

    /** Shard {@code shard} of a loaded model's parameters. */
    public static ShardedLlama fromModel(Backend backend, LlamaModel model, ShardSpec shard, Collective tpGroup, Collective ppGroup) {
        return fromFull(backend, model.config(), shard, tpGroup, ppGroup,
                Sharding.download(model.backend(), model.parameters().byName()));
    }

    /**
     * Shard {@code shard} of a Hugging Face model directory (config.json and safetensors), reading
     * one full tensor at a time and keeping only this shard's slice of it.
     */
    public static ShardedLlama load(Backend backend, Path dir, ShardSpec shard, Collective tpGroup, Collective ppGroup) {
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        CheckpointWeights weights = CheckpointWeights.open(dir);
        Map<String, float[]> tensors = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) {
            if (!Sharding.holds(config, shard, s.name())) continue;
            if (!weights.has(s.name())) {
                throw new CheckpointException(dir + ": the checkpoint has no tensor '" + s.name() + "' that " + config.architecture() + " needs");
            }
            tensors.put(s.name(), Sharding.slice(s.name(), s.shape(), weights.floats(s.name(), s.shape()), shard));
        }
        return new ShardedLlama(backend, config, shard, tpGroup, ppGroup, tensors);
    }

    private static LlamaWeights.Layer layer(Map<String, Tensor> m, int i) {
        String p = "model.layers." + i + ".";
        return new LlamaWeights.Layer(m.get(p + "input_layernorm.weight"),
                m.get(p + "self_attn.q_proj.weight"), m.get(p + "self_attn.q_proj.bias"),
                m.get(p + "self_attn.k_proj.weight"), m.get(p + "self_attn.k_proj.bias"),
                m.get(p + "self_attn.v_proj.weight"), m.get(p + "self_attn.v_proj.bias"),
                m.get(p + "self_attn.o_proj.weight"), m.get(p + "self_attn.o_proj.bias"),
                m.get(p + "post_attention_layernorm.weight"),
                m.get(p + "mlp.gate_proj.weight"), m.get(p + "mlp.gate_proj.bias"),
                m.get(p + "mlp.up_proj.weight"), m.get(p + "mlp.up_proj.bias"),
                m.get(p + "mlp.down_proj.weight"), m.get(p + "mlp.down_proj.bias"));
    }

    // ---------------------------------------------------------------- accessors

    public Backend backend() {
        return backend;
    }

    public ModelConfig config() {
        return config;
    }

    public ShardSpec shard() {
        return shard;
    }

    public Collective tpGroup() {
        return tpGroup;
    }

    public Collective ppGroup() {
        return ppGroup;
    }

    /** The parameters this shard holds, Hugging Face order and names, shard shapes. */
    public List<LlamaWeights.Spec> specs() {
        return specs;
    }

    /** This shard's parameters by Hugging Face name (F32, shard shapes). */
    public Map<String, Tensor> parameters() {
        return params;
    }

    /** This shard's gradients by Hugging Face name (same shapes as the parameters). */
    public Map<String, Tensor> gradients() {
        return grads;
    }

    public Map<String, float[]> downloadParameters() {
        return Sharding.download(backend, params);
    }

    public Map<String, float[]> downloadGradients() {
        return Sharding.download(backend, grads);
    }

    /**
     * Whether a parameter's gradient counts in the global gradient norm on this rank: split
     * tensors on every tensor rank, replicated ones on tensor rank 0 only, and the tied copy of
     * the embedding on the last stage not at all (stage 0's copy counts).
     */
    public boolean countsInGlobalNorm(String name) {
        if (!params.containsKey(name)) throw new IllegalArgumentException("this shard has no '" + name + "'");
        if (name.equals(EMBED) && !shard.firstStage()) return false;
        return Sharding.split(name) != Sharding.Split.REPLICATED || shard.tpRank() == 0;
    }

    /**
     * Data parallelism: replaces every gradient of this shard by its sum over {@code dataGroup}
     * (the ranks holding the same shard in the other data-parallel replicas) times {@code scale}
     * (1 for a sum, 1 / dp for a mean). Call it after the last backward of a step, before the
     * optimizer step; every rank of the data group must call it.
     */
    public void allReduceGradients(Collective dataGroup, float scale) {
        for (Tensor t : grads.values()) {
            float[] v = backend.download(t);
            dataGroup.allReduceSum(v);
            if (scale != 1f) for (int i = 0; i < v.length; i++) v[i] *= scale;
            backend.upload(t, v);
        }
    }

    public void zeroGradients() {
        for (Tensor t : grads.values()) backend.zero(t);
        if (tiedOwnGrad != null) backend.zero(tiedOwnGrad);
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

    int firstLayer() {
        return firstLayer;
    }

    int numLocalLayers() {
        return numLocal;
    }

    int vocabStart() {
        return vocab0;
    }

    int vocabEnd() {
        return vocab1;
    }

    // ---------------------------------------------------------------- communication helpers

    /** t = sum over the tensor-parallel group of t. */
    void allReduceTp(Tensor t) {
        if (shard.tp() == 1) return;
        float[] v = backend.download(t);
        tpGroup.allReduceSum(v);
        backend.upload(t, v);
    }

    void sendTo(int stage, Tensor t) {
        float[] v = backend.download(t);
        ppGroup.sendFloats(stage, v, 0, v.length);
    }

    void recvFrom(int stage, Tensor t) {
        float[] v = new float[Math.toIntExact(t.numel())];
        ppGroup.recvFloats(stage, v, 0, v.length);
        backend.upload(t, v);
    }

    /** Copies the last stage's values to every stage. */
    float[] broadcastFromLast(float[] values, int length) {
        float[] buf = shard.lastStage() ? values : new float[length];
        if (buf.length != length) throw new IllegalStateException("broadcast of " + buf.length + " values, expected " + length);
        if (shard.pp() > 1) ppGroup.broadcast(buf, shard.pp() - 1);
        return buf;
    }

    /**
     * Vocabulary-parallel embedding: out[n] = embed[ids[n]] for the ids in this rank's range, 0
     * for the others, then the all-reduce over the tensor ranks. Returns which ids were in range.
     */
    boolean[] embedTokens(Tensor out, Tensor localIds, int[] ids) {
        int n = ids.length, V = config.vocabSize();
        int[] local = new int[n];
        boolean[] in = new boolean[n];
        boolean all = true;
        for (int i = 0; i < n; i++) {
            int id = ids[i];
            if (id < 0 || id >= V) throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + V + ")");
            in[i] = id >= vocab0 && id < vocab1;
            local[i] = in[i] ? id - vocab0 : 0;
            all &= in[i];
        }
        backend.upload(localIds, local);
        backend.embedding(out, localIds, embed);
        if (!all || shard.tp() > 1) {
            float[] x = backend.download(out);
            zeroRows(x, in, config.hiddenSize());
            tpGroup.allReduceSum(x);
            backend.upload(out, x);
        }
        return in;
    }

    private static void zeroRows(float[] x, boolean[] keep, int C) {
        for (int i = 0; i < keep.length; i++) if (!keep[i]) Arrays.fill(x, i * C, (i + 1) * C, 0f);
    }

    /** Gathers the vocabulary columns [N, Vt] of every tensor rank into logits [N, V]. */
    void gatherLogits(Tensor logits, Tensor localLogits, int N) {
        if (logits == localLogits) return;
        int V = config.vocabSize(), tp = shard.tp();
        int[] offsets = new int[tp + 1];
        for (int t = 0; t <= tp; t++) offsets[t] = N * ShardSpec.partStart(V, tp, t);
        float[] parts = new float[N * V];
        float[] mine = backend.download(localLogits);
        System.arraycopy(mine, 0, parts, offsets[shard.tpRank()], mine.length);
        tpGroup.allGatherParts(parts, offsets);
        float[] full = new float[N * V];
        for (int t = 0; t < tp; t++) {
            int v0 = ShardSpec.partStart(V, tp, t), w = ShardSpec.partStart(V, tp, t + 1) - v0;
            for (int n = 0; n < N; n++) System.arraycopy(parts, offsets[t] + n * w, full, n * V + v0, w);
        }
        backend.upload(logits, full);
    }

    /** This rank's vocabulary columns of dLogits [N, V], into dLocal [N, Vt]. */
    private void sliceLogitGradient(Tensor dLocal, Tensor dLogits, int N) {
        if (dLocal == dLogits) return;
        int V = config.vocabSize(), w = vocab1 - vocab0;
        float[] full = backend.download(dLogits);
        float[] mine = new float[N * w];
        for (int n = 0; n < N; n++) System.arraycopy(full, n * V + vocab0, mine, n * w, w);
        backend.upload(dLocal, mine);
    }

    // ---------------------------------------------------------------- the stage's trunk

    /** Buffers for a forward of B x T tokens through this stage (the caller frees them). */
    StageActivations newActivations(int B, int T) {
        return new StageActivations(backend, config, numLocal, heads, qDim, kvDim, inter, vocab1 - vocab0, shard.lastStage(), B, T);
    }

    private StageActivations activations(int i, Batch b) {
        while (acts.size() <= i) acts.add(null);
        StageActivations a = acts.get(i);
        if (a == null || !a.fits(b.batch(), b.time())) {
            if (a != null) a.free();
            a = newActivations(b.batch(), b.time());
            acts.set(i, a);
        }
        return a;
    }

    private void checkIds(Batch batch) {
        int V = config.vocabSize();
        for (int i = 0; i < batch.ids().length; i++) {
            int id = batch.ids()[i];
            if (id < 0 || id >= V) {
                throw new IllegalArgumentException("row " + i / batch.time() + ", position " + i % batch.time()
                        + ": token id " + id + " outside the vocabulary [0, " + V + ")");
            }
        }
    }

    /** Embedding (stage 0) or the previous stage's output, this stage's layers, then the next stage or the final norm. */
    void stageForward(StageActivations a, Batch batch) {
        backend.upload(a.mask, batch.mask());
        backend.upload(a.positions, batch.positions());
        if (shard.firstStage()) a.inVocab = embedTokens(a.residual[0], a.ids, batch.ids());
        else recvFrom(shard.stage() - 1, a.residual[0]);
        float eps = config.rmsNormEps();
        for (int l = 0; l < numLocal; l++) {
            LlamaWeights.Layer w = layers[l];
            Tensor x = a.residual[l], h = a.afterAttention[l];
            backend.rmsnorm(a.ln1[l], a.rstd1[l], x, w.inputNorm(), eps);
            backend.matmul(a.q[l], a.ln1[l], w.q(), w.qBias());
            backend.matmul(a.k[l], a.ln1[l], w.k(), w.kBias());
            backend.matmul(a.v[l], a.ln1[l], w.v(), w.vBias());
            backend.rotary(a.q[l], a.positions, invFreq, heads);
            backend.rotary(a.k[l], a.positions, invFreq, kvHeads);
            backend.attention(a.att[l], a.lse[l], a.q[l], a.k[l], a.v[l], a.mask, heads, kvHeads,
                    config.slidingWindows()[firstLayer + l]);
            backend.matmul(h, a.att[l], w.o(), shard.tpRank() == 0 ? w.oBias() : null);
            allReduceTp(h);
            backend.add(h, h, x);
            backend.rmsnorm(a.ln2[l], a.rstd2[l], h, w.postNorm(), eps);
            backend.matmul(a.gate[l], a.ln2[l], w.gate(), w.gateBias());
            backend.matmul(a.up[l], a.ln2[l], w.up(), w.upBias());
            backend.swiglu(a.swi[l], a.gate[l], a.up[l]);
            Tensor out = a.residual[l + 1];
            backend.matmul(out, a.swi[l], w.down(), shard.tpRank() == 0 ? w.downBias() : null);
            allReduceTp(out);
            backend.add(out, out, h);
        }
        if (!shard.lastStage()) sendTo(shard.stage() + 1, a.residual[numLocal]);
        else backend.rmsnorm(a.lnf, a.rstdf, a.residual[numLocal], finalNorm, eps);
    }

    /**
     * The backward of {@link #stageForward}: from a.dLnf (last stage, set by the head's backward)
     * or the next stage's gradient, through this stage's layers, to the previous stage or the
     * embedding.
     */
    private void stageBackward(StageActivations a) {
        backend.zero(a.dResidual);
        if (shard.lastStage()) {
            backend.rmsnormBackward(a.dResidual, gFinalNorm, a.dLnf, a.residual[numLocal], finalNorm, a.rstdf);
        } else {
            recvFrom(shard.stage() + 1, a.dResidual);
        }
        for (int l = numLocal - 1; l >= 0; l--) {
            LlamaWeights.Layer w = layers[l], gw = gradLayers[l];
            int window = config.slidingWindows()[firstLayer + l];
            // MLP block; a.dResidual holds dOut (the same on every tensor rank)
            backend.zero(a.dSwi);
            backend.matmulBackward(a.dSwi, gw.down(), gw.downBias(), a.dResidual, a.swi[l], w.down());
            backend.zero(a.dGate);
            backend.zero(a.dUp);
            backend.swigluBackward(a.dGate, a.dUp, a.dSwi, a.gate[l], a.up[l]);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw.gate(), gw.gateBias(), a.dGate, a.ln2[l], w.gate());
            backend.matmulBackward(a.dLn, gw.up(), gw.upBias(), a.dUp, a.ln2[l], w.up());
            allReduceTp(a.dLn);
            backend.rmsnormBackward(a.dResidual, gw.postNorm(), a.dLn, a.afterAttention[l], w.postNorm(), a.rstd2[l]);
            // attention block; a.dResidual holds dh
            backend.zero(a.dAtt);
            backend.matmulBackward(a.dAtt, gw.o(), gw.oBias(), a.dResidual, a.att[l], w.o());
            backend.zero(a.dq);
            backend.zero(a.dk);
            backend.zero(a.dv);
            backend.attentionBackward(a.dq, a.dk, a.dv, a.dAtt, a.att[l], a.lse[l], a.q[l], a.k[l], a.v[l], a.mask,
                    heads, kvHeads, window);
            backend.rotaryBackward(a.dq, a.positions, invFreq, heads);
            backend.rotaryBackward(a.dk, a.positions, invFreq, kvHeads);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw.q(), gw.qBias(), a.dq, a.ln1[l], w.q());
            backend.matmulBackward(a.dLn, gw.k(), gw.kBias(), a.dk, a.ln1[l], w.k());
            backend.matmulBackward(a.dLn, gw.v(), gw.vBias(), a.dv, a.ln1[l], w.v());
            allReduceTp(a.dLn);
            backend.rmsnormBackward(a.dResidual, gw.inputNorm(), a.dLn, a.residual[l], w.inputNorm(), a.rstd1[l]);
        }
        if (!shard.firstStage()) {
            sendTo(shard.stage() - 1, a.dResidual);
        } else {
            // only the rows of ids in this rank's vocabulary range reach its embedding rows
            Tensor dOut = a.dResidual;
            boolean all = true;
            for (boolean b : a.inVocab) all &= b;
            if (!all) {
                float[] d = backend.download(a.dResidual);
                zeroRows(d, a.inVocab, config.hiddenSize());
                backend.upload(a.dLn, d);
                dOut = a.dLn;
            }
            backend.embeddingBackward(gEmbedUse, a.ids, dOut);
        }
    }

    /** After a backward with tied embeddings across stages: both copies' gradient = head use + embedding use. */
    private void exchangeTiedGradients() {
        if (tiedOwnGrad == null) return;
        int last = shard.pp() - 1;
        float[] mine = backend.download(tiedOwnGrad), other = new float[mine.length];
        if (shard.firstStage()) {
            ppGroup.sendFloats(last, mine, 0, mine.length);
            ppGroup.recvFloats(last, other, 0, other.length);
        } else if (shard.stage() == last) {
            ppGroup.recvFloats(0, other, 0, other.length);
            ppGroup.sendFloats(0, mine, 0, mine.length);
        } else {
            return;
        }
        float[] head = shard.firstStage() ? other : mine, emb = shard.firstStage() ? mine : other;
        float[] sum = new float[mine.length];
        for (int i = 0; i < sum.length; i++) sum[i] = head[i] + emb[i];
        backend.upload(grads.get(EMBED), sum);
    }

    // ---------------------------------------------------------------- the heads

    private void requireHead(ModelConfig.Head head, String what) {
        if (config.head() != head) {
            throw new IllegalStateException(what + " needs a " + head + " model, this is " + config.architecture());
        }
    }

    /** {@link LlamaModel#forward} on this rank's shard: every rank gets the same logprobs (and entropies). */
    public TokenStats forward(Batch batch, boolean withEntropy) {
        return forward(List.of(batch), withEntropy).get(0);
    }

    /** A forward of several micro-batches (kept for one {@link #backward(List, List)}). */
    public List<TokenStats> forward(List<Batch> microBatches, boolean withEntropy) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "forward");
        List<TokenStats> out = new ArrayList<>();
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            if (batch.time() < 2) throw new IllegalArgumentException("a causal LM forward needs at least 2 tokens per row, got " + batch.time());
            checkIds(batch);
            StageActivations a = activations(i, batch);
            stageForward(a, batch);
            if (shard.lastStage()) {
                backend.matmul(a.localLogits, a.lnf, lmHead, null);
                gatherLogits(a.logits, a.localLogits, a.N);
                backend.upload(a.targets, batch.nextTokens());
                backend.tokenLogprobs(a.logprobs, withEntropy ? a.entropy : null, a.tokenLse, a.logits, a.targets);
            }
        }
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            StageActivations a = acts.get(i);
            int n = batch.batch() * (batch.time() - 1);
            float[] both = null;
            if (shard.lastStage()) {
                both = new float[withEntropy ? 2 * n : n];
                System.arraycopy(batch.dropLast(backend.download(a.logprobs)), 0, both, 0, n);
                if (withEntropy) System.arraycopy(batch.dropLast(backend.download(a.entropy)), 0, both, n, n);
            }
            both = broadcastFromLast(both, withEntropy ? 2 * n : n);
            out.add(new TokenStats(batch.batch(), batch.time() - 1, Arrays.copyOfRange(both, 0, n),
                    withEntropy ? Arrays.copyOfRange(both, n, 2 * n) : null));
        }
        lastBatches = List.copyOf(microBatches);
        lastKind = Kind.LOGPROBS;
        lastHadEntropy = withEntropy;
        return out;
    }

    /** {@link LlamaModel#backward} for the last single-batch {@link #forward}. */
    public void backward(float[] dLogprobs, float[] dEntropies) {
        backward(List.of(dLogprobs), dEntropies == null ? null : List.of(dEntropies));
    }

    /** The backward of the last forward's micro-batches (dEntropies null, or one array (or null) per micro-batch). */
    public void backward(List<float[]> dLogprobs, List<float[]> dEntropies) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "backward");
        checkBackward(Kind.LOGPROBS, dLogprobs.size(), "backward");
        for (int i = 0; i < lastBatches.size(); i++) {
            Batch batch = lastBatches.get(i);
            StageActivations a = acts.get(i);
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
                sliceLogitGradient(a.dLocalLogits, a.dLogits, a.N);
                backend.zero(a.dLnf);
                backend.matmulBackward(a.dLnf, gHead, null, a.dLocalLogits, a.lnf, lmHead);
                allReduceTp(a.dLnf);
            }
            stageBackward(a);
            a.freeBackward();
        }
        exchangeTiedGradients();
    }

    /** One scalar per position [B, T] (a critic's values), the same on every rank. */
    public float[] values(Batch batch) {
        return values(List.of(batch)).get(0);
    }

    public List<float[]> values(List<Batch> microBatches) {
        requireHead(ModelConfig.Head.SCORE, "values");
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            checkIds(batch);
            StageActivations a = activations(i, batch);
            stageForward(a, batch);
            if (shard.lastStage()) backend.matmul(a.values, a.lnf, score, null);
        }
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            out.add(broadcastFromLast(shard.lastStage() ? backend.download(acts.get(i).values) : null, batch.tokens()));
        }
        lastBatches = List.copyOf(microBatches);
        lastKind = Kind.VALUES;
        return out;
    }

    public void backwardValues(float[] dValues) {
        backwardValues(List.of(dValues));
    }

    /** The backward of the last {@link #values} from dLoss/dValue [B, T] per micro-batch. */
    public void backwardValues(List<float[]> dValues) {
        requireHead(ModelConfig.Head.SCORE, "backwardValues");
        checkBackward(Kind.VALUES, dValues.size(), "backwardValues");
        for (int i = 0; i < lastBatches.size(); i++) {
            StageActivations a = acts.get(i);
            float[] d = dValues.get(i);
            if (d.length != a.N) throw new IllegalArgumentException("dValues of micro-batch " + i + " has " + d.length + " values, expected " + a.N);
            a.allocateBackward();
            if (shard.lastStage()) {
                backend.upload(a.dValues, d);
                backend.zero(a.dLnf);
                backend.matmulBackward(a.dLnf, gScore, null, a.dValues, a.lnf, score);
            }
            stageBackward(a);
            a.freeBackward();
        }
    }

    /** The reward of each row, read at its last non-pad token (as {@link LlamaModel#scores}), the same on every rank. */
    public float[] scores(Batch batch) {
        return scores(List.of(batch)).get(0);
    }

    public List<float[]> scores(List<Batch> microBatches) {
        requireHead(ModelConfig.Head.SCORE, "scores");
        for (int i = 0; i < microBatches.size(); i++) {
            Batch batch = microBatches.get(i);
            checkIds(batch);
            StageActivations a = activations(i, batch);
            stageForward(a, batch);
            if (shard.lastStage()) {
                a.allocateScores();
                int[] last = batch.lastNonPad(config.padTokenId());
                int[] rows = new int[batch.batch()];
                for (int b = 0; b < rows.length; b++) rows[b] = b * batch.time() + last[b];
                backend.upload(a.scoreRows, rows);
                backend.gatherRows(a.scoreIn, a.lnf, a.scoreRows);
                backend.matmul(a.scoreOut, a.scoreIn, score, null);
            }
        }
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < microBatches.size(); i++) {
            out.add(broadcastFromLast(shard.lastStage() ? backend.download(acts.get(i).scoreOut) : null, microBatches.get(i).batch()));
        }
        lastBatches = List.copyOf(microBatches);
        lastKind = Kind.SCORES;
        return out;
    }

    public void backwardScores(float[] dScores) {
        backwardScores(List.of(dScores));
    }

    /** The backward of the last {@link #scores} from dLoss/dScore [B] per micro-batch. */
    public void backwardScores(List<float[]> dScores) {
        requireHead(ModelConfig.Head.SCORE, "backwardScores");
        checkBackward(Kind.SCORES, dScores.size(), "backwardScores");
        for (int i = 0; i < lastBatches.size(); i++) {
            StageActivations a = acts.get(i);
            float[] d = dScores.get(i);
            if (d.length != a.B) throw new IllegalArgumentException("dScores of micro-batch " + i + " has " + d.length + " values, expected " + a.B);
            a.allocateBackward();
            if (shard.lastStage()) {
                backend.upload(a.dScoreOut, d);
                backend.zero(a.dScoreIn);
                backend.matmulBackward(a.dScoreIn, gScore, null, a.dScoreOut, a.scoreIn, score);
                backend.zero(a.dLnf);
                backend.gatherRowsBackward(a.dLnf, a.dScoreIn, a.scoreRows);
            }
            stageBackward(a);
            a.freeBackward();
        }
    }

    private void checkBackward(Kind kind, int count, String what) {
        if (lastBatches == null || lastKind != kind) throw new IllegalStateException(what + " without its forward (" + kind + ")");
        if (count != lastBatches.size()) {
            throw new IllegalArgumentException(what + ": " + count + " gradients for " + lastBatches.size() + " micro-batches");
        }
    }

    /** Frees the kept activations. */
    public void releaseActivations() {
        for (StageActivations a : acts) if (a != null) a.free();
        acts.clear();
        lastBatches = null;
    }

    @Override
    public void close() {
        releaseActivations();
        for (Tensor t : params.values()) backend.free(t);
        for (Tensor t : grads.values()) backend.free(t);
        if (tiedOwnGrad != null) backend.free(tiedOwnGrad);
        backend.free(invFreq);
    }
}
