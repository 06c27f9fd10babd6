package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.checkpoint.AtomicFiles;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A LLaMA-family decoder (Llama, Qwen2, Mistral) with a causal LM head or a scalar score head,
 * written only against {@link Backend} ops, so it runs on every backend.
 *
 * <p>Training is data flow: {@link #forward} gives per-token logprobs (and entropies) of the next
 * tokens, the caller's loss turns them into dLoss/dLogprob (and dLoss/dEntropy) per token, and
 * {@link #backward} adds the parameter gradients to {@link #gradients()}. Gradients accumulate
 * over calls until {@link #zeroGradients()}: with micro-batches, the caller scales each micro-batch's
 * dLoss so that their sum is the gradient of the whole batch's loss (e.g. divide by the token count
 * of the whole batch, not of the micro-batch). Score models ({@link #scores}, {@link #values}) work
 * the same way with dLoss/dScore or dLoss/dValue.
 *
 * <p>A backward uses the activations saved by the last forward, which must have been a forward of
 * the same head kind.
 */
public final class LlamaModel implements AutoCloseable {
    private final Backend backend;
    private final ModelConfig config;
    private final LlamaWeights params;
    private final Tensor invFreq;
    private LlamaWeights grads;
    private Activations acts;
    private Batch lastBatch;
    private boolean lastHadEntropy;
    private boolean lastWasScores;
    // score head at chosen rows
    private Tensor scoreRows, scoreIn, scoreOut, dScoreOut, dScoreIn;

    private LlamaModel(Backend backend, ModelConfig config, LlamaWeights params) {
        this.backend = backend;
        this.config = config;
        this.params = params;
        this.invFreq = backend.allocate(DType.F32, config.headDim() / 2);
        backend.upload(invFreq, config.rope().inverseFrequencies(config.ropeTheta(), config.headDim()));
    }

    // ---------------------------------------------------------------- creation, loading, saving

    /** Loads config.json and the safetensors weights of a Hugging Face model directory, in F32. */
    public static LlamaModel load(Backend backend, Path dir) {
        return load(backend, dir, DType.F32);
    }

    /** Loads a model directory, storing parameters as {@code dtype} (F32 or BF16). */
    public static LlamaModel load(Backend backend, Path dir, DType dtype) {
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        CheckpointWeights weights = CheckpointWeights.open(dir);
        LlamaWeights params = LlamaWeights.allocate(backend, config, dtype);
        for (LlamaWeights.Spec s : params.specs()) {
            if (!weights.has(s.name())) {
                throw new CheckpointException(dir + ": the checkpoint has no tensor '" + s.name() + "' that " + config.architecture() + " needs");
            }
            backend.upload(params.get(s.name()), weights.floats(s.name(), s.shape()));
        }
        return new LlamaModel(backend, config, params);
    }

    /** A model with random weights (normal with standard deviation std for matrices, 1 for norms, 0 for biases). */
    public static LlamaModel random(Backend backend, ModelConfig config, DType dtype, long seed, float std) {
        LlamaWeights params = LlamaWeights.allocate(backend, config, dtype);
        SplittableRandom rng = new SplittableRandom(seed);
        for (LlamaWeights.Spec s : params.specs()) {
            Tensor t = params.get(s.name());
            float[] v = new float[Math.toIntExact(t.numel())];
            if (s.name().endsWith("norm.weight")) java.util.Arrays.fill(v, 1f);
            else if (!s.name().endsWith(".bias")) {
                for (int i = 0; i < v.length; i += 2) {
                    double u1 = 1.0 - rng.nextDouble(), u2 = rng.nextDouble();
                    double r = Math.sqrt(-2 * Math.log(u1)) * std;
                    v[i] = (float) (r * Math.cos(2 * Math.PI * u2));
                    if (i + 1 < v.length) v[i + 1] = (float) (r * Math.sin(2 * Math.PI * u2));
                }
            }
            backend.upload(t, v);
        }
        return new LlamaModel(backend, config, params);
    }

    /**
     * Writes config.json and the weights (one model.safetensors, or shards of at most
     * maxShardBytes with model.safetensors.index.json) in Hugging Face's format.
     */
    public void save(Path dir, StDType dtype, long maxShardBytes) {
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

    public ModelConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public LlamaWeights parameters() {
        return params;
    }

    /** The gradient table (same names and shapes as the parameters, F32), allocated on first use. */
    public LlamaWeights gradients() {
        if (grads == null) grads = LlamaWeights.allocate(backend, config, DType.F32);
        return grads;
    }

    public void zeroGradients() {
        gradients().zero(backend);
    }

    // ---------------------------------------------------------------- the trunk

    private Activations activations(int B, int T) {
        if (acts == null || acts.B != B || acts.T != T) {
            if (acts != null) acts.free();
            acts = new Activations(backend, config, B, T);
        }
        return acts;
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

    /** Embedding, the decoder layers and the final norm over a batch, into a.lnf; keeps what the backward needs. */
    void trunk(Activations a, Batch batch) {
        trunk(a, batch, null);
    }

    /**
     * {@link #trunk} with edited rows (null: none): some rows of the embedding output replaced by
     * given vectors, some rows passed unchanged through a range of layers (S3D's draft).
     */
    void trunk(Activations a, Batch batch, RowEdits edits) {
        checkIds(batch);
        backend.upload(a.ids, batch.ids());
        backend.upload(a.mask, batch.mask());
        backend.upload(a.positions, batch.positions());
        backend.embedding(a.residual[0], a.ids, params.embed);
        if (edits != null) {
            zeroRows(a.residual[0], edits.inputRows(), edits.inputScratch());
            backend.gatherRowsBackward(a.residual[0], edits.inputs(), edits.inputRows());
        }
        for (int l = 0; l < config.numLayers(); l++) {
            final int layer = l;
            Tensor bypass = edits != null && edits.bypasses(l) ? edits.bypassRows() : null;
            layer(l, new LayerBuffers(a.residual[l], a.ln1[l], a.rstd1[l], a.q[l], a.k[l], a.v[l], a.att[l], a.afterAttention[l],
                            a.ln2[l], a.rstd2[l], a.gate[l], a.up[l], a.swi[l], a.residual[l + 1]), a.positions,
                    () -> backend.attention(a.att[layer], a.lse[layer], a.q[layer], a.k[layer], a.v[layer], a.mask,
                            config.numHeads(), config.numKvHeads(), config.slidingWindows()[layer]),
                    bypass, bypass == null ? null : edits.bypassScratch());
        }
        backend.rmsnorm(a.lnf, a.rstdf, a.residual[config.numLayers()], params.finalNorm, config.rmsNormEps());
    }

    /** The buffers of one decoder layer's forward over N rows (ln1 and ln2, rstd1 and rstd2 may be shared). */
    record LayerBuffers(Tensor in, Tensor ln1, Tensor rstd1, Tensor q, Tensor k, Tensor v, Tensor att, Tensor h,
                        Tensor ln2, Tensor rstd2, Tensor gate, Tensor up, Tensor swi, Tensor out) {
    }

    /**
     * One decoder layer: out = h + mlp(h), h = in + attention(in). {@code attention} reads the
     * rotated b.q, b.k, b.v and writes b.att (over the rows themselves, or a KV cache). Rows listed
     * in {@code bypassRows} leave the layer unchanged (out = in exactly: their two block outputs
     * are zeroed before the residual adds); scratch holds [rows, C].
     */
    void layer(int l, LayerBuffers b, Tensor positions, Runnable attention, Tensor bypassRows, Tensor scratch) {
        LlamaWeights.Layer w = params.layers[l];
        float eps = config.rmsNormEps();
        backend.rmsnorm(b.ln1(), b.rstd1(), b.in(), w.inputNorm(), eps);
        backend.matmul(b.q(), b.ln1(), w.q(), w.qBias());
        backend.matmul(b.k(), b.ln1(), w.k(), w.kBias());
        backend.matmul(b.v(), b.ln1(), w.v(), w.vBias());
        backend.rotary(b.q(), positions, invFreq, config.numHeads());
        backend.rotary(b.k(), positions, invFreq, config.numKvHeads());
        attention.run();
        backend.matmul(b.h(), b.att(), w.o(), w.oBias());
        if (bypassRows != null) zeroRows(b.h(), bypassRows, scratch);
        backend.add(b.h(), b.h(), b.in());
        backend.rmsnorm(b.ln2(), b.rstd2(), b.h(), w.postNorm(), eps);
        backend.matmul(b.gate(), b.ln2(), w.gate(), w.gateBias());
        backend.matmul(b.up(), b.ln2(), w.up(), w.upBias());
        backend.swiglu(b.swi(), b.gate(), b.up());
        backend.matmul(b.out(), b.swi(), w.down(), w.downBias());
        if (bypassRows != null) zeroRows(b.out(), bypassRows, scratch);
        backend.add(b.out(), b.out(), b.h());
    }

    /** t[rows] = 0 with existing ops: gather, negate, add back (x + -x is exactly 0). */
    void zeroRows(Tensor t, Tensor rows, Tensor scratch) {
        backend.gatherRows(scratch, t, rows);
        backend.scale(scratch, -1f);
        backend.gatherRowsBackward(t, scratch, rows);
    }

    /** The backward of {@link #trunk} from the gradient already in a.dLnf; adds into the gradients. */
    private void trunkBackward(Activations a) {
        trunkBackward(a, null, true);
    }

    /**
     * The backward of {@link #trunk}(a, batch, edits); with {@code parameterGradients} false no
     * parameter gradient is computed (only a.dResidual, which ends as the gradient of the
     * embedding output: what a trained input vector needs).
     */
    void trunkBackward(Activations a, RowEdits edits, boolean parameterGradients) {
        LlamaWeights g = parameterGradients ? gradients() : null;
        int H = config.numHeads(), KV = config.numKvHeads(), L = config.numLayers();
        backend.zero(a.dResidual);
        backend.rmsnormBackward(a.dResidual, g == null ? null : g.finalNorm, a.dLnf, a.residual[L], params.finalNorm, a.rstdf);
        for (int l = L - 1; l >= 0; l--) {
            LlamaWeights.Layer w = params.layers[l], gw = g == null ? null : g.layers[l];
            Tensor bypass = edits != null && edits.bypasses(l) ? edits.bypassRows() : null;
            // MLP block: out = h + down(swiglu(gate(ln2), up(ln2))); a.dResidual holds dOut
            backend.zero(a.dSwi);
            backend.matmulBackward(a.dSwi, gw == null ? null : gw.down(), gw == null ? null : gw.downBias(),
                    blockGradient(a, bypass, edits), a.swi[l], w.down());
            backend.zero(a.dGate);
            backend.zero(a.dUp);
            backend.swigluBackward(a.dGate, a.dUp, a.dSwi, a.gate[l], a.up[l]);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw == null ? null : gw.gate(), gw == null ? null : gw.gateBias(), a.dGate, a.ln2[l], w.gate());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.up(), gw == null ? null : gw.upBias(), a.dUp, a.ln2[l], w.up());
            backend.rmsnormBackward(a.dResidual, gw == null ? null : gw.postNorm(), a.dLn, a.afterAttention[l], w.postNorm(), a.rstd2[l]);
            // attention block: h = x + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))); a.dResidual holds dh
            backend.zero(a.dAtt);
            backend.matmulBackward(a.dAtt, gw == null ? null : gw.o(), gw == null ? null : gw.oBias(),
                    blockGradient(a, bypass, edits), a.att[l], w.o());
            backend.zero(a.dq);
            backend.zero(a.dk);
            backend.zero(a.dv);
            backend.attentionBackward(a.dq, a.dk, a.dv, a.dAtt, a.att[l], a.lse[l], a.q[l], a.k[l], a.v[l], a.mask,
                    H, KV, config.slidingWindows()[l]);
            backend.rotaryBackward(a.dq, a.positions, invFreq, H);
            backend.rotaryBackward(a.dk, a.positions, invFreq, KV);
            backend.zero(a.dLn);
            backend.matmulBackward(a.dLn, gw == null ? null : gw.q(), gw == null ? null : gw.qBias(), a.dq, a.ln1[l], w.q());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.k(), gw == null ? null : gw.kBias(), a.dk, a.ln1[l], w.k());
            backend.matmulBackward(a.dLn, gw == null ? null : gw.v(), gw == null ? null : gw.vBias(), a.dv, a.ln1[l], w.v());
            backend.rmsnormBackward(a.dResidual, gw == null ? null : gw.inputNorm(), a.dLn, a.residual[l], w.inputNorm(), a.rstd1[l]);
        }
        if (g != null) backend.embeddingBackward(g.embed, a.ids, a.dResidual);
    }

    /**
     * The gradient reaching a block's output: a.dResidual, or for a layer that bypasses rows a copy
     * with those rows zeroed (their block output was zeroed in the forward; the residual path
     * still carries their gradient).
     */
    private Tensor blockGradient(Activations a, Tensor bypass, RowEdits edits) {
        if (bypass == null) return a.dResidual;
        Tensor d = a.bypassGradient(config);
        backend.copy(d, a.dResidual);
        zeroRows(d, bypass, edits.bypassScratch());
        return d;
    }

    // ---------------------------------------------------------------- causal LM head

    private void requireHead(ModelConfig.Head head, String what) {
        if (config.head() != head) {
            throw new IllegalStateException(what + " needs a " + head + " model, this is " + config.architecture());
        }
    }

    /** Logprobs (and, if asked, entropies) of each next token; keeps the activations for {@link #backward}. */
    public TokenStats forward(Batch batch, boolean withEntropy) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "forward");
        if (batch.time() < 2) throw new IllegalArgumentException("a causal LM forward needs at least 2 tokens per row, got " + batch.time());
        Activations a = activations(batch.batch(), batch.time());
        trunk(a, batch);
        backend.matmul(a.logits, a.lnf, params.lmHead, null);
        backend.upload(a.targets, batch.nextTokens());
        backend.tokenLogprobs(a.logprobs, withEntropy ? a.entropy : null, a.tokenLse, a.logits, a.targets);
        lastBatch = batch;
        lastHadEntropy = withEntropy;
        float[] lp = batch.dropLast(backend.download(a.logprobs));
        float[] ent = withEntropy ? batch.dropLast(backend.download(a.entropy)) : null;
        return new TokenStats(batch.batch(), batch.time() - 1, lp, ent);
    }

    /** The logits [B, T, V] of the last {@link #forward}. */
    public float[] logits() {
        if (lastBatch == null || acts == null || acts.logits == null) throw new IllegalStateException("no forward has run");
        return backend.download(acts.logits);
    }

    /**
     * Adds to the gradients the backward of the last {@link #forward} from dLoss/dLogprob and
     * dLoss/dEntropy per token ([B, T - 1] each; dEntropies may be null).
     */
    public void backward(float[] dLogprobs, float[] dEntropies) {
        requireHead(ModelConfig.Head.CAUSAL_LM, "backward");
        if (lastBatch == null || acts.logits == null) throw new IllegalStateException("backward without a forward");
        if (dEntropies != null && !lastHadEntropy) throw new IllegalStateException("dEntropies given but the forward did not compute entropies");
        Activations a = acts;
        a.allocateBackward(config);
        backend.upload(a.dLogprobs, lastBatch.padLast(dLogprobs, "dLogprobs"));
        if (dEntropies != null) backend.upload(a.dEntropy, lastBatch.padLast(dEntropies, "dEntropies"));
        backend.zero(a.dLogits);
        backend.tokenLogprobsBackward(a.dLogits, a.dLogprobs, dEntropies == null ? null : a.dEntropy,
                a.logits, a.tokenLse, dEntropies == null ? null : a.entropy, a.targets);
        backend.zero(a.dLnf);
        backend.matmulBackward(a.dLnf, gradients().lmHead, null, a.dLogits, a.lnf, params.lmHead);
        trunkBackward(a);
    }

    // ---------------------------------------------------------------- score head

    /** One scalar per position [B, T] (a critic's values); keeps the activations for {@link #backwardValues}. */
    public float[] values(Batch batch) {
        requireHead(ModelConfig.Head.SCORE, "values");
        Activations a = activations(batch.batch(), batch.time());
        trunk(a, batch);
        backend.matmul(a.values, a.lnf, params.score, null);
        lastBatch = batch;
        lastWasScores = false;
        return backend.download(a.values);
    }

    /** Adds to the gradients the backward of the last {@link #values} from dLoss/dValue [B, T]. */
    public void backwardValues(float[] dValues) {
        requireHead(ModelConfig.Head.SCORE, "backwardValues");
        if (lastBatch == null || lastWasScores) throw new IllegalStateException("backwardValues without values()");
        Activations a = acts;
        a.allocateBackward(config);
        backend.upload(a.dValues, dValues);
        backend.zero(a.dLnf);
        backend.matmulBackward(a.dLnf, gradients().score, null, a.dValues, a.lnf, params.score);
        trunkBackward(a);
    }

    /**
     * The reward of each row: the score at its last token whose id is not the pad token (as
     * transformers' LlamaForSequenceClassification); keeps the activations for {@link #backwardScores}.
     */
    public float[] scores(Batch batch) {
        requireHead(ModelConfig.Head.SCORE, "scores");
        Activations a = activations(batch.batch(), batch.time());
        trunk(a, batch);
        int B = batch.batch(), C = config.hiddenSize();
        int[] last = batch.lastNonPad(config.padTokenId());
        int[] rows = new int[B];
        for (int b = 0; b < B; b++) rows[b] = b * batch.time() + last[b];
        if (scoreRows == null || scoreRows.numel() != B) {
            for (Tensor t : new Tensor[]{scoreRows, scoreIn, scoreOut, dScoreOut, dScoreIn}) if (t != null) backend.free(t);
            scoreRows = backend.allocate(DType.I32, B);
            scoreIn = backend.allocate(DType.F32, B, C);
            scoreOut = backend.allocate(DType.F32, B, 1);
            dScoreOut = backend.allocate(DType.F32, B, 1);
            dScoreIn = backend.allocate(DType.F32, B, C);
        }
        backend.upload(scoreRows, rows);
        backend.gatherRows(scoreIn, a.lnf, scoreRows);
        backend.matmul(scoreOut, scoreIn, params.score, null);
        lastBatch = batch;
        lastWasScores = true;
        return backend.download(scoreOut);
    }

    /** Adds to the gradients the backward of the last {@link #scores} from dLoss/dScore [B]. */
    public void backwardScores(float[] dScores) {
        requireHead(ModelConfig.Head.SCORE, "backwardScores");
        if (lastBatch == null || !lastWasScores) throw new IllegalStateException("backwardScores without scores()");
        Activations a = acts;
        a.allocateBackward(config);
        backend.upload(dScoreOut, dScores);
        backend.zero(dScoreIn);
        backend.matmulBackward(dScoreIn, gradients().score, null, dScoreOut, scoreIn, params.score);
        backend.zero(a.dLnf);
        backend.gatherRowsBackward(a.dLnf, dScoreIn, scoreRows);
        trunkBackward(a);
    }

    /** Frees the activations (kept between calls of the same shape). */
    public void releaseActivations() {
        if (acts != null) acts.free();
        acts = null;
        lastBatch = null;
    }

    @Override
    public void close() {
        releaseActivations();
        params.free(backend);
        if (grads != null) grads.free(backend);
        backend.free(invFreq);
        for (Tensor t : new Tensor[]{scoreRows, scoreIn, scoreOut, dScoreOut, dScoreIn}) if (t != null) backend.free(t);
    }
}
