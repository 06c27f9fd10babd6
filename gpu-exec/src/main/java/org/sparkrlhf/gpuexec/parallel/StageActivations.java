package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.List;

/**
 * The buffers of one micro-batch's forward through one stage of one tensor rank, kept until its
 * backward (GPipe keeps every micro-batch's), and the backward's scratch, allocated on the
 * backward and freed after it. Widths are this rank's: heads, kv heads, intermediate features and
 * vocabulary rows of its tensor-parallel part; the full-vocabulary logits exist on the last stage.
 */
final class StageActivations {
    final int B, T, N;
    final Tensor ids, mask, positions, targets;
    /** Whether each token's id is in this rank's vocabulary range (its embedding row is here). */
    boolean[] inVocab;
    /** residual[l]: the stream entering local layer l; residual[Ls]: leaving the stage. */
    final Tensor[] residual;
    final Tensor[] afterAttention, ln1, rstd1, q, k, v, att, lse, ln2, rstd2, gate, up, swi;
    /** Last stage only. */
    final Tensor lnf, rstdf;
    /** Last stage of a causal LM: this rank's logits [N, Vt], the gathered logits [N, V] (the same tensor when tp = 1). */
    final Tensor localLogits, logits, tokenLse, logprobs, entropy;
    /** Last stage of a score model: one value per position. */
    final Tensor values;
    /** Scores (rewards) at chosen rows, allocated by the scores head. */
    Tensor scoreRows, scoreIn, scoreOut;
    Tensor dResidual, dLn, dq, dk, dv, dAtt, dGate, dUp, dSwi, dLnf, dLogits, dLocalLogits, dLogprobs, dEntropy,
            dValues, dScoreOut, dScoreIn;
    private final Backend backend;
    private final List<Tensor> all = new ArrayList<>();
    private final List<Tensor> scratch = new ArrayList<>();
    private final int C, Q, KV, I, V, Vt;

    StageActivations(Backend backend, ModelConfig c, int layers, int heads, int qDim, int kvDim, int inter, int vocabLocal,
                     boolean last, int B, int T) {
        this.backend = backend;
        this.B = B;
        this.T = T;
        this.N = B * T;
        this.C = c.hiddenSize();
        this.Q = qDim;
        this.KV = kvDim;
        this.I = inter;
        this.V = c.vocabSize();
        this.Vt = vocabLocal;
        ids = ints(all, N);
        mask = ints(all, B, T);
        positions = ints(all, N);
        targets = ints(all, N);
        residual = new Tensor[layers + 1];
        for (int l = 0; l <= layers; l++) residual[l] = floats(all, N, C);
        afterAttention = layers(layers, N, C);
        ln1 = layers(layers, N, C);
        rstd1 = layers(layers, N);
        q = layers(layers, N, Q);
        k = layers(layers, N, KV);
        v = layers(layers, N, KV);
        att = layers(layers, N, Q);
        lse = layers(layers, B, heads, T);
        ln2 = layers(layers, N, C);
        rstd2 = layers(layers, N);
        gate = layers(layers, N, I);
        up = layers(layers, N, I);
        swi = layers(layers, N, I);
        boolean lm = c.head() == ModelConfig.Head.CAUSAL_LM;
        lnf = last ? floats(all, N, C) : null;
        rstdf = last ? floats(all, N) : null;
        localLogits = last && lm ? floats(all, N, Vt) : null;
        logits = last && lm ? (Vt == V ? localLogits : floats(all, N, V)) : null;
        tokenLse = last && lm ? floats(all, N) : null;
        logprobs = last && lm ? floats(all, N) : null;
        entropy = last && lm ? floats(all, N) : null;
        values = last && !lm ? floats(all, N, 1) : null;
    }

    boolean fits(int b, int t) {
        return b == B && t == T;
    }

    /** Allocates the scores head's buffers for the chosen rows. */
    void allocateScores() {
        if (scoreRows != null) return;
        scoreRows = ints(all, B);
        scoreIn = floats(all, B, C);
        scoreOut = floats(all, B, 1);
    }

    void allocateBackward() {
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

    void freeBackward() {
        for (Tensor t : scratch) backend.free(t);
        scratch.clear();
        dResidual = dLn = dq = dk = dv = dAtt = dGate = dUp = dSwi = dLnf = dLogits = dLocalLogits = dLogprobs = dEntropy = null;
        dValues = dScoreOut = dScoreIn = null;
    }

    private Tensor[] layers(int L, int... shape) {
        Tensor[] t = new Tensor[L];
        for (int l = 0; l < L; l++) t[l] = floats(all, shape);
        return t;
    }

    private Tensor floats(List<Tensor> owner, int... shape) {
        Tensor t = backend.allocate(DType.F32, shape);
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
