package org.sparkrlhf.gpuexec.model;

import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.backend.TensorSet;

/**
 * What a cached decode forward keeps on one rank from step to step: its stage's KV caches
 * ([batch, slots, kv] per local layer) and one layer's buffers for {@code rows} new rows (shared by
 * the layers), all of the backend's activation type (bf16 in its bf16 mode), but the norms' fp32
 * rstd. {@link Generator} decodes one row per sequence on them, {@link SpeculativeGenerator} k + 1
 * (the pending token and the draft's masks, or the drafts being verified): both therefore hold and
 * round their activations and caches alike.
 */
final class DecodeBuffers {
    final Tensor[] kCache, vCache;
    final Tensor x, ln, rstd, q, k, v, att, h, gate, up, swi;
    /** The buffers as a layer reads them: the residual stream in and out in place, one norm's output and rstd for both norms. */
    final LlamaModel.LayerBuffers layer;

    DecodeBuffers(TensorSet set, LlamaModel model, int batch, int slots, int rows) {
        int L = model.numLocalLayers(), C = model.config().hiddenSize(), I = model.inter();
        kCache = new Tensor[L];
        vCache = new Tensor[L];
        for (int l = 0; l < L; l++) {
            kCache[l] = set.activations(batch, slots, model.kvDim());
            vCache[l] = set.activations(batch, slots, model.kvDim());
        }
        x = set.activations(rows, C);
        ln = set.activations(rows, C);
        rstd = set.floats(rows);
        q = set.activations(rows, model.qDim());
        k = set.activations(rows, model.kvDim());
        v = set.activations(rows, model.kvDim());
        att = set.activations(rows, model.qDim());
        h = set.activations(rows, C);
        gate = set.activations(rows, I);
        up = set.activations(rows, I);
        swi = set.activations(rows, I);
        layer = new LlamaModel.LayerBuffers(x, ln, rstd, q, k, v, att, h, ln, rstd, gate, up, swi, x);
    }
}
