package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Every buffer of a forward pass over B x T tokens that the backward reads, and the scratch
 * gradients of the backward (as llm.c: explicit, allocated once per shape, reused).
 */
final class Activations {
    final int B, T, N;
    final Tensor ids, mask, positions, targets;
    /** residual[l]: the stream entering layer l; residual[L]: leaving the last layer. */
    final Tensor[] residual;
    /** Per layer: the stream after the attention block. */
    final Tensor[] afterAttention;
    final Tensor[] ln1, rstd1, q, k, v, att, lse, ln2, rstd2, gate, up, swi;
    final Tensor lnf, rstdf;
    /** Causal LM head: logits [N, V], per-row log-sum-exp, logprobs and entropies of the targets. */
    final Tensor logits, tokenLse, logprobs, entropy;
    /** Score head: one value per position [N, 1]. */
    final Tensor values;
    private final Backend backend;
    private final List<Tensor> all = new ArrayList<>();
    // backward scratch, allocated on first backward
    Tensor dResidual, dLn, dq, dk, dv, dAtt, dGate, dUp, dSwi, dLnf, dLogits, dLogprobs, dEntropy, dValues;
    /** A block output's gradient with bypassed rows zeroed (S3D's draft), allocated on first use. */
    private Tensor dBypassed;

    Activations(Backend backend, ModelConfig c, int B, int T) {
        this.backend = backend;
        this.B = B;
        this.T = T;
        this.N = B * T;
        int L = c.numLayers(), C = c.hiddenSize(), I = c.intermediateSize(), Q = c.qDim(), KV = c.kvDim();
        ids = ints(N);
        mask = ints(B, T);
        positions = ints(N);
        targets = ints(N);
        residual = new Tensor[L + 1];
        for (int l = 0; l <= L; l++) residual[l] = floats(N, C);
        afterAttention = layers(L, N, C);
        ln1 = layers(L, N, C);
        rstd1 = layers(L, N);
        q = layers(L, N, Q);
        k = layers(L, N, KV);
        v = layers(L, N, KV);
        att = layers(L, N, Q);
        lse = layers(L, B, c.numHeads(), T);
        ln2 = layers(L, N, C);
        rstd2 = layers(L, N);
        gate = layers(L, N, I);
        up = layers(L, N, I);
        swi = layers(L, N, I);
        lnf = floats(N, C);
        rstdf = floats(N);
        boolean lm = c.head() == ModelConfig.Head.CAUSAL_LM;
        logits = lm ? floats(N, c.vocabSize()) : null;
        tokenLse = lm ? floats(N) : null;
        logprobs = lm ? floats(N) : null;
        entropy = lm ? floats(N) : null;
        values = lm ? null : floats(N, 1);
    }

    void allocateBackward(ModelConfig c) {
        if (dResidual != null) return;
        int C = c.hiddenSize(), I = c.intermediateSize(), Q = c.qDim(), KV = c.kvDim();
        dResidual = floats(N, C);
        dLn = floats(N, C);
        dq = floats(N, Q);
        dk = floats(N, KV);
        dv = floats(N, KV);
        dAtt = floats(N, Q);
        dGate = floats(N, I);
        dUp = floats(N, I);
        dSwi = floats(N, I);
        dLnf = floats(N, C);
        if (logits != null) {
            dLogits = floats(N, c.vocabSize());
            dLogprobs = floats(N);
            dEntropy = floats(N);
        } else {
            dValues = floats(N, 1);
        }
    }

    Tensor bypassGradient(ModelConfig c) {
        if (dBypassed == null) dBypassed = floats(N, c.hiddenSize());
        return dBypassed;
    }

    private Tensor[] layers(int L, int... shape) {
        Tensor[] t = new Tensor[L];
        for (int l = 0; l < L; l++) t[l] = floats(shape);
        return t;
    }

    private Tensor floats(int... shape) {
        Tensor t = backend.allocate(DType.F32, shape);
        all.add(t);
        return t;
    }

    private Tensor ints(int... shape) {
        Tensor t = backend.allocate(DType.I32, shape);
        all.add(t);
        return t;
    }

    void free() {
        for (Tensor t : all) backend.free(t);
        all.clear();
    }
}
