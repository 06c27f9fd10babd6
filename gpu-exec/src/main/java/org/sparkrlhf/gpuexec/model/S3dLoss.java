package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;

import java.util.Arrays;
import java.util.List;

/**
 * S3D's draft loss: the mean cross-entropy of the mask positions' predictions under layer
 * skipping, as the draft makes them at decoding time. A row is an example's context followed by
 * its k mask tokens (left-padded to the batch's longest); the context except its last token goes
 * through every layer, and the last context token and the masks bypass the layers
 * [skipFrom, skipTo) (at decoding time the cache holds the full model's keys and values of the
 * context, and the pending token and the masks run through the skipped model). Only the mask
 * embeddings get a gradient: the model's weights stay as they are, so the verifier, and with it
 * every generated token's distribution, is the original model's (no LM loss is needed to keep it).
 */
public final class S3dLoss {
    private final LlamaModel model;
    private final S3dDraft draft;
    private final Backend backend;
    private final Tensor gradient;

    public S3dLoss(LlamaModel model, S3dDraft draft) {
        if (model.config().head() != ModelConfig.Head.CAUSAL_LM) {
            throw new IllegalArgumentException("S3D needs a causal LM, not " + model.config().architecture());
        }
        model.requireWhole("training S3D's draft");
        draft.config().check(model.config().numLayers());
        this.model = model;
        this.draft = draft;
        this.backend = model.backend();
        this.gradient = backend.allocate(DType.F32, draft.config().draftTokens(), model.config().hiddenSize());
    }

    /** dLoss/dMaskEmbeddings [k, C], summed over {@link #forwardBackward} calls until zeroed. */
    public Tensor gradient() {
        return gradient;
    }

    public void zeroGradient() {
        backend.zero(gradient);
    }

    /** The loss over the examples (mean over their k * n mask positions); adds its gradient. */
    public float forwardBackward(List<S3dExample> examples) {
        return run(examples, true);
    }

    /** The loss over the examples, no gradient. */
    public float loss(List<S3dExample> examples) {
        return run(examples, false);
    }

    private float run(List<S3dExample> examples, boolean backward) {
        int k = draft.config().draftTokens(), n = examples.size(), C = model.config().hiddenSize(), V = model.config().vocabSize();
        if (n == 0) throw new IllegalArgumentException("no S3D examples");
        int T = 0;
        for (S3dExample e : examples) {
            if (!e.fits(k)) throw new IllegalArgumentException("example at anchor " + e.anchor() + " of " + e.tokens().length + " tokens has no " + k + " targets");
            T = Math.max(T, e.anchor() + 1 + k);
        }
        int[][] rows = new int[n][];
        int M = n * k;
        int[] maskRows = new int[M], maskIds = new int[M], targets = new int[M], bypassRows = new int[n * (k + 1)];
        for (int r = 0; r < n; r++) {
            S3dExample e = examples.get(r);
            int len = e.anchor() + 1 + k, off = T - len;
            rows[r] = Arrays.copyOf(Arrays.copyOf(e.tokens(), e.anchor() + 1), len); // mask ids 0: replaced below
            bypassRows[r * (k + 1)] = r * T + off + e.anchor();
            for (int i = 0; i < k; i++) {
                int row = r * T + off + e.anchor() + 1 + i;
                maskRows[r * k + i] = row;
                maskIds[r * k + i] = i;
                targets[r * k + i] = e.tokens()[e.anchor() + 1 + i];
                bypassRows[r * (k + 1) + 1 + i] = row;
            }
        }
        Batch batch = Batch.leftPadded(rows, 0);
        TensorSet temps = new TensorSet(backend);
        Activations a = new Activations(model, n, T);
        try {
            Tensor maskRowsT = temps.ints(M), maskIdsT = temps.ints(M), targetsT = temps.ints(M), bypassT = temps.ints(bypassRows.length);
            backend.upload(maskRowsT, maskRows);
            backend.upload(maskIdsT, maskIds);
            backend.upload(targetsT, targets);
            backend.upload(bypassT, bypassRows);
            Tensor inputs = temps.floats(M, C), inputScratch = temps.floats(M, C), bypassScratch = temps.floats(bypassRows.length, C);
            backend.embedding(inputs, maskIdsT, draft.maskEmbeddings());
            S3dConfig s = draft.config();
            RowEdits edits = new RowEdits(maskRowsT, inputs, inputScratch, bypassT, bypassScratch, s.skipFrom(), s.skipTo());
            model.trunk(a, batch, edits);
            Tensor lnf = temps.floats(M, C), logits = temps.floats(M, V), lse = temps.floats(M), logprobs = temps.floats(M);
            LlamaWeights w = model.parameters();
            backend.gatherRows(lnf, a.lnf, maskRowsT);
            backend.matmul(logits, lnf, w.lmHead, null);
            backend.tokenLogprobs(logprobs, null, lse, logits, targetsT);
            double sum = 0;
            for (float lp : backend.download(logprobs)) sum -= lp;
            float loss = (float) (sum / M);
            if (!backward) return loss;
            // dLoss/dLogprob = -1/M at every mask position; back through the head to the masks' rows
            Tensor dLogprobs = temps.floats(M), dLogits = temps.floats(M, V), dLnf = temps.floats(M, C), dInputs = temps.floats(M, C);
            float[] d = new float[M];
            Arrays.fill(d, -1f / M);
            backend.upload(dLogprobs, d);
            backend.tokenLogprobsBackward(dLogits, dLogprobs, null, logits, lse, null, targetsT);
            backend.matmulBackward(dLnf, null, null, dLogits, lnf, w.lmHead);
            a.allocateBackward();
            backend.zero(a.dLnf);
            backend.gatherRowsBackward(a.dLnf, dLnf, maskRowsT);
            model.trunkBackward(a, edits, false);
            // the masks' inputs replaced the embedding rows, so their gradient is dResidual[0] there
            backend.gatherRows(dInputs, a.dResidual, maskRowsT);
            backend.embeddingBackward(gradient, maskIdsT, dInputs);
            return loss;
        } finally {
            a.free();
            temps.free();
        }
    }



    /** Frees the gradient. */
    public void free() {
        backend.free(gradient);
    }
}
