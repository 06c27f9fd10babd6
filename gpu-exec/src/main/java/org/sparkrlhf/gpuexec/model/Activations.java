package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Every buffer of one micro-batch's forward over B x T tokens through one shard that the backward
 * reads, and the backward's scratch gradients (as llm.c: explicit, allocated once per shape,
 * reused). A forward that no backward follows keeps nothing per layer: every layer writes the same
 * buffers and the residual stream alternates between two. Widths are the shard's: its heads, kv
 * heads, intermediate features and vocabulary rows of its tensor-parallel part; the final norm and
 * the heads exist on the last stage only, where the full-vocabulary logits are gathered (the same
 * tensor as this rank's when tp = 1). The layers' buffers and the final norm's output are of the
 * backend's activation type (BF16 in a bf16 mode); norm statistics, log-sum-exps, logits, the
 * heads' outputs and every gradient are F32.
 */
final class Activations {
    final int B, T, N;
    /** Whether every layer has its own buffers, as a backward needs. */
    final boolean forBackward;
    final Tensor ids, mask, positions, targets;
    /** Whether each token's id is in this rank's vocabulary range (its embedding row is here). */
    boolean[] inVocab;
    /** residual[l]: the stream entering local layer l; residual[Ls]: leaving the stage. */
    final Tensor[] residual;
    /** Per layer: the stream after the attention block. */
    final Tensor[] afterAttention;
    final Tensor[] ln1, rstd1, q, k, v, att, lse, ln2, rstd2, gate, up, swi;
    /** Last stage only. */
    final Tensor lnf, rstdf;
    /** Last stage of a causal LM: this rank's logits [N, Vt], the gathered logits [N, V], per-row log-sum-exp, logprobs and entropies of the targets. */
    final Tensor localLogits, logits, tokenLse, logprobs, entropy;
    /** Last stage of a score model: one value per position [N, 1]. */
    final Tensor values;
    /** Scores (rewards) at chosen rows, allocated by the scores head. */
    Tensor scoreRows, scoreIn, scoreOut;
    // backward scratch, allocated on the first backward
    Tensor dResidual, dLn, dq, dk, dv, dAtt, dGate, dUp, dSwi, dLnf, dLogits, dLocalLogits, dLogprobs, dEntropy,
            dValues, dScoreOut, dScoreIn;
    /** A block output's gradient with bypassed rows zeroed (S3D's draft), allocated on first use. */
    private Tensor dBypassed;
    private final Backend backend;
    private final List<Tensor> all = new ArrayList<>();
    private final List<Tensor> scratch = new ArrayList<>();
    private final int C, Q, KV, I, V, Vt;

    /** The buffers of {@code model}'s shard for B x T tokens, each layer's kept for a backward. */
    Activations(LlamaModel model, int B, int T) {
        this(model, B, T, true);
    }

    /** The buffers of {@code model}'s shard for B x T tokens, per layer only {@code forBackward}. */
    Activations(LlamaModel model, int B, int T, boolean forBackward) {
        this(model, B, T, forBackward, true);
    }

    /**
     * A prefill's buffers: one layer's, shared by all layers, and of the last stage only the final
     * norm's output (the generator draws from the last position's logits itself).
     */
    static Activations forPrefill(LlamaModel model, int B, int T) {
        return new Activations(model, B, T, false, false);
    }

    private Activations(LlamaModel model, int B, int T, boolean forBackward, boolean heads) {
        ModelConfig c = model.config();
        this.backend = model.backend();
        this.B = B;
        this.T = T;
        this.N = B * T;
        this.forBackward = forBackward;
        this.C = c.hiddenSize();
        this.Q = model.qDim();
        this.KV = model.kvDim();
        this.I = model.inter();
        this.V = c.vocabSize();
        this.Vt = model.vocabEnd() - model.vocabStart();
        int layers = model.numLocalLayers();
        boolean last = model.shard().lastStage();
        ids = ints(all, N);
        mask = ints(all, B, T);
        positions = ints(all, N);
        targets = ints(all, N);
        DType act = backend.activationType(), f32 = DType.F32;
        residual = new Tensor[layers + 1];
        for (int l = 0; l <= layers; l++) residual[l] = forBackward || l < 2 ? alloc(all, act, N, C) : residual[l % 2];
        afterAttention = layers(layers, act, N, C);
        ln1 = layers(layers, act, N, C);
        rstd1 = layers(layers, f32, N);
        q = layers(layers, act, N, Q);
        k = layers(layers, act, N, KV);
        v = layers(layers, act, N, KV);
        att = layers(layers, act, N, Q);
        lse = layers(layers, f32, B, model.heads(), T);
        ln2 = layers(layers, act, N, C);
        rstd2 = layers(layers, f32, N);
        gate = layers(layers, act, N, I);
        up = layers(layers, act, N, I);
        swi = layers(layers, act, N, I);
        boolean lm = c.head() == ModelConfig.Head.CAUSAL_LM;
        lnf = last ? alloc(all, act, N, C) : null;
        rstdf = last ? floats(all, N) : null;
        boolean lmHead = last && heads && lm;
        localLogits = lmHead ? floats(all, N, Vt) : null;
        logits = lmHead ? (Vt == V ? localLogits : floats(all, N, V)) : null;
        tokenLse = lmHead ? floats(all, N) : null;
        logprobs = lmHead ? floats(all, N) : null;
        entropy = lmHead ? floats(all, N) : null;
        values = last && heads && !lm ? floats(all, N, 1) : null;
    }

    boolean fits(int b, int t, boolean backward) {
        return b == B && t == T && backward == forBackward;
    }

    /** Allocates the scores head's buffers for the chosen rows. */
    void allocateScores() {
        if (scoreRows != null) return;
        scoreRows = ints(all, B);
        scoreIn = floats(all, B, C);
        scoreOut = floats(all, B, 1);
    }

    void allocateBackward() {
        if (!forBackward) throw new IllegalStateException("a backward after a forward that kept no activations (an inference-only forward)");
        if (dResidual != null) return;
        dResidual = floats(scratch, N, C);
        dLn = floats(scratch, N, C);
        dq = floats(scratch, N, Q);
        dk = floats(scratch, N, KV);
        dv = floats(scratch, N, KV);
        dAtt = floats(scratch, N, Q);
        dGate = floats(scratch, N, I);
        dUp = floats(scratch, N, I);
        dSwi = floats(scratch, N, I);
        if (lnf != null) {
            dLnf = floats(scratch, N, C);
            if (logits != null) {
                dLogits = floats(scratch, N, V);
                dLocalLogits = Vt == V ? dLogits : floats(scratch, N, Vt);
                dLogprobs = floats(scratch, N);
                dEntropy = floats(scratch, N);
            } else {
                dValues = floats(scratch, N, 1);
                dScoreOut = floats(scratch, B, 1);
                dScoreIn = floats(scratch, B, C);
            }
        }
    }

    Tensor bypassGradient() {
        if (dBypassed == null) dBypassed = floats(scratch, N, C);
        return dBypassed;
    }

    /** Frees the backward's scratch (GPipe keeps every micro-batch's forward buffers, not their scratch). */
    void freeBackward() {
        for (Tensor t : scratch) backend.free(t);
        scratch.clear();
        dResidual = dLn = dq = dk = dv = dAtt = dGate = dUp = dSwi = dLnf = dLogits = dLocalLogits = dLogprobs = dEntropy = null;
        dValues = dScoreOut = dScoreIn = dBypassed = null;
    }

    private Tensor[] layers(int L, DType type, int... shape) {
        Tensor[] t = new Tensor[L];
        for (int l = 0; l < L; l++) t[l] = forBackward || l == 0 ? alloc(all, type, shape) : t[0];
        return t;
    }

    private Tensor floats(List<Tensor> owner, int... shape) {
        return alloc(owner, DType.F32, shape);
    }

    private Tensor alloc(List<Tensor> owner, DType type, int... shape) {
        Tensor t = backend.allocate(type, shape);
        owner.add(t);
        return t;
    }

    private Tensor ints(List<Tensor> owner, int... shape) {
        Tensor t = backend.allocate(DType.I32, shape);
        owner.add(t);
        return t;
    }

    void free() {
        freeBackward();
        for (Tensor t : all) backend.free(t);
        all.clear();
    }
}
