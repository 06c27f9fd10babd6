package org.sparkrlhf.gpuexec.backend;

/**
 * The kernels a model runs, one method per concern, forward and backward (as llm.c). A model
 * written against this interface runs unchanged on the CPU backend (pure Java, the reference) and
 * on the CUDA backend.
 *
 * <h2>Conventions</h2>
 * <ul>
 *   <li>Tensors are row-major and contiguous; a tensor of shape [..., C] is a matrix of
 *       {@link Tensor#rows()} rows of C. Ops read their sizes from the shapes of their arguments
 *       (and the head counts they are given) and throw {@link IllegalArgumentException} when the
 *       shapes disagree.</li>
 *   <li>Float compute is fp32. Weights may be stored as BF16, activations and KV caches too (see
 *       {@link #activationType}); gradients and optimizer state are F32 unless an op says otherwise. Ids, positions, masks, slots and
 *       counters are I32.</li>
 *   <li>Forward ops overwrite their outputs. <b>Backward ops add</b> into their gradient outputs
 *       (dIn, dWeight, dBias, ...), so that gradients of a tensor used several times sum up and
 *       gradients accumulate over micro-batches; callers {@link #zero} what must start at 0. A
 *       gradient output given as {@code null} is not computed.</li>
 *   <li>Attention masks are [B, T] of 0/1 over keys: a key at a 0 position is never attended
 *       (a query whose every key is masked gets output 0). Causality is by index within the
 *       sequence; {@code slidingWindow > 0} also drops keys with {@code query - key >= window}.</li>
 *   <li>A decode step must be replayable as a recorded graph (see {@link #capturable}): values
 *       that change from step to step (positions, cache slots, sampled tokens, RNG step counters)
 *       are read from device tensors, never passed as launch arguments.</li>
 *   <li>Ops may run asynchronously; {@link #download} waits for the work before it.</li>
 * </ul>
 */
public interface Backend extends AutoCloseable {

    /** A short name for logs, e.g. "cpu(16 threads)". */
    String name();

    // ---------------------------------------------------------------- memory

    /**
     * The type a model stores its activations (the forward's buffers) and KV caches in: F32, or
     * BF16 in a bf16 mode, which halves them. Norm statistics, attention log-sum-exps, logits and
     * gradients stay F32 whatever this says.
     */
    default DType activationType() {
        return DType.F32;
    }

    /** A new tensor filled with zeros. */
    Tensor allocate(DType dtype, int... shape);

    /** Releases a tensor's memory; the handle must not be used afterwards. */
    void free(Tensor t);

    /** Copies {@code src} (numel values) into a float tensor; a BF16 tensor rounds to nearest even. */
    default void upload(Tensor dst, float[] src) {
        if (src.length != dst.numel()) {
            throw new IllegalArgumentException("upload: " + src.length + " values for " + dst.describe());
        }
        uploadRange(dst, 0, src, 0, src.length);
    }

    /**
     * Copies {@code src[from .. from + n)} into elements {@code [at, at + n)} of a float tensor (a
     * BF16 tensor rounds to nearest even): a tensor is filled a chunk at a time, so no caller needs
     * a host array of the whole tensor (a reallocation receives its pieces straight into place).
     */
    void uploadRange(Tensor dst, long at, float[] src, int from, int n);

    /** Copies {@code src} (numel values) into an I32 tensor. */
    void upload(Tensor dst, int[] src);

    /** The values of a float tensor (BF16 widened to float). Waits for pending work. */
    default float[] download(Tensor src) {
        float[] out = new float[Math.toIntExact(src.numel())];
        downloadRange(src, 0, out, 0, out.length);
        return out;
    }

    /**
     * Copies elements {@code [at, at + n)} of a float tensor (BF16 widened to float) into
     * {@code into[to ..]}. Waits for pending work.
     */
    void downloadRange(Tensor src, long at, float[] into, int to, int n);

    /** The values of an I32 tensor. Waits for pending work. */
    int[] downloadInts(Tensor src);

    /** Waits until every op issued so far has finished. */
    void synchronize();

    // ---------------------------------------------------------------- elementwise and reductions

    /** t = 0. */
    void zero(Tensor t);

    /** dst = src, same number of elements; converts between F32 and BF16; I32 to I32 only. */
    default void copy(Tensor dst, Tensor src) {
        if (dst.numel() != src.numel()) {
            throw new IllegalArgumentException("copy: " + src.describe() + " into " + dst.describe());
        }
        copyRange(dst, 0, src, 0, src.numel());
    }

    /**
     * Elements {@code [dstAt, dstAt + n)} of dst = elements {@code [srcAt, srcAt + n)} of src, on
     * the backend (no host copy); converts between F32 and BF16; I32 to I32 only. Tensors may be the
     * same if the ranges do not overlap. A received chunk goes into its place in a tensor this way.
     */
    void copyRange(Tensor dst, long dstAt, Tensor src, long srcAt, long n);

    /** t = t * s (float tensors). */
    void scale(Tensor t, float s);

    /** out = a + b, same number of elements; out may be a or b (the residual add). */
    void add(Tensor out, Tensor a, Tensor b);

    /** t = t + delta for an I32 tensor (positions, slots and step counters of a decode step). */
    void addInt(Tensor t, int delta);

    /** out[0] += sum of x[i]^2, with out an F32 tensor of one element (global gradient norm). */
    void sumSquares(Tensor out, Tensor x);

    // ---------------------------------------------------------------- transformer layers

    /** out[n, :] = table[ids[n], :]; ids I32 [N], table [V, C], out [N, C]. Ids must be in [0, V). */
    void embedding(Tensor out, Tensor ids, Tensor table);

    /** dTable[ids[n], :] += dOut[n, :]. */
    void embeddingBackward(Tensor dTable, Tensor ids, Tensor dOut);

    /**
     * out = in @ weight^T + bias, with the Hugging Face layout: in [N, IN], weight [OUT, IN],
     * bias [OUT] or null, out [N, OUT].
     */
    void matmul(Tensor out, Tensor in, Tensor weight, Tensor bias);

    /**
     * The products of one input (a layer's q, k and v; gate and up): outs[i] = in @ weights[i]^T +
     * biases[i] (biases null, or with null entries, for none), as {@link #matmul} each. A backend
     * may run them side by side; by default they run one after the other.
     */
    default void matmuls(Tensor[] outs, Tensor in, Tensor[] weights, Tensor[] biases) {
        for (int i = 0; i < outs.length; i++) matmul(outs[i], in, weights[i], biases == null ? null : biases[i]);
    }

    /** dIn += dOut @ weight; dWeight += dOut^T @ in; dBias += column sums of dOut. Any may be null. */
    void matmulBackward(Tensor dIn, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor in, Tensor weight);

    /**
     * out = in * rstd * weight per row, rstd = 1 / sqrt(mean(in^2) + eps) (Llama RMSNorm); in, out
     * [N, C], weight [C]; rstd [N] is saved for the backward.
     */
    void rmsnorm(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps);

    /** The backward of {@link #rmsnorm}: dIn += ..., dWeight += .... */
    void rmsnormBackward(Tensor dIn, Tensor dWeight, Tensor dOut, Tensor in, Tensor weight, Tensor rstd);

    /**
     * Rotary position embedding in place, Hugging Face's rotate_half layout: x [N, heads * D]
     * (N rows of any leading shape), positions I32 [N], invFreq F32 [D / 2]. For each head and
     * i &lt; D/2, with a = positions[n] * invFreq[i] (fp32 product): (x[i], x[i + D/2]) becomes
     * (x[i] cos a - x[i + D/2] sin a, x[i + D/2] cos a + x[i] sin a).
     */
    void rotary(Tensor x, Tensor positions, Tensor invFreq, int heads);

    /** The backward of {@link #rotary} in place on the gradient (rotation by -a). */
    void rotaryBackward(Tensor dx, Tensor positions, Tensor invFreq, int heads);

    /**
     * Causal grouped-query attention with a key padding mask, softmax scale 1/sqrt(D):
     * q [B, T, heads * D], k and v [B, T, kvHeads * D] (query head h reads kv head
     * h / (heads / kvHeads)), mask I32 [B, T], out [B, T, heads * D]; lse F32 [B, heads, T] saves
     * each query's log-sum-exp of scaled scores for the backward.
     */
    void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor mask,
                   int heads, int kvHeads, int slidingWindow);

    /** The backward of {@link #attention}: dq, dk, dv += ..., from dOut and the saved out and lse. */
    void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor out, Tensor lse,
                           Tensor q, Tensor k, Tensor v, Tensor mask,
                           int heads, int kvHeads, int slidingWindow);

    /** out = silu(gate) * up, all [N, I]. */
    void swiglu(Tensor out, Tensor gate, Tensor up);

    /** dGate += ..., dUp += ... for {@link #swiglu}. */
    void swigluBackward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up);

    // ---------------------------------------------------------------- heads and losses

    /** out = log_softmax(logits) per row; both [N, V]. */
    void logSoftmax(Tensor out, Tensor logits);

    /**
     * Per row n of logits [N, V]: lse[n] = logsumexp(logits[n]), logprobs[n] = logits[n, targets[n]]
     * - lse[n], entropy[n] = -sum_j p_j log p_j (entropy may be null). targets I32 [N] in [0, V).
     * Cross-entropy is -logprobs: losses are computed from these per-token values by the caller.
     */
    void tokenLogprobs(Tensor logprobs, Tensor entropy, Tensor lse, Tensor logits, Tensor targets);

    /**
     * dLogits += dLogprobs[n] * (onehot(targets[n]) - p) + dEntropy[n] * (-p * (log p + entropy[n]))
     * with p = softmax(logits[n]) recomputed from the saved lse. dEntropy (and then entropy) may be
     * null.
     */
    void tokenLogprobsBackward(Tensor dLogits, Tensor dLogprobs, Tensor dEntropy,
                               Tensor logits, Tensor lse, Tensor entropy, Tensor targets);

    /** out[m, :] = in[rows[m], :]; in [N, C], rows I32 [M], out [M, C] (scalar heads, last tokens). */
    void gatherRows(Tensor out, Tensor in, Tensor rows);

    /** dIn[rows[m], :] += dOut[m, :]. */
    void gatherRowsBackward(Tensor dIn, Tensor dOut, Tensor rows);

    // ---------------------------------------------------------------- optimizer

    /** One AdamW update of param from grad with moments m and v (F32, same shape), see {@link AdamWStep}. */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step);

    // ---------------------------------------------------------------- KV cache, decoding, sampling

    /**
     * Writes new rows into a per-sequence cache: cache [B, S, C] (or [B, S] with C = 1), x holding
     * B * Tn rows of C ([B, Tn, C], [B, C] for Tn = 1, or [B, Tn] for C = 1), slots I32 [B]:
     * cache[b, slots[b] + t, :] = x[b, t, :]. Used for keys and values (F32 or BF16 caches), the
     * cache's key mask and the generated-token buffer (I32).
     */
    default void kvAppend(Tensor cache, Tensor x, Tensor slots) {
        kvAppend(cache, x, slots, 0);
    }

    /**
     * {@link #kvAppend(Tensor, Tensor, Tensor)} into the cache rows [firstRow, firstRow + M) only,
     * with slots I32 [M] and x holding M * Tn rows of C: cache[firstRow + m, slots[m] + t, :] =
     * x[m, t, :]. A prefill split into passes of a few sequences fills its rows of a batch's cache.
     */
    void kvAppend(Tensor cache, Tensor x, Tensor slots, int firstRow);

    /**
     * Attention of one new query per sequence over a KV cache: q and out [B, heads * D], kCache and
     * vCache [B, S, kvHeads * D], cacheMask I32 [B, S], slots I32 [B]. Sequence b attends to cache
     * slots j &lt;= slots[b] with cacheMask[b, j] = 1 (and slots[b] - j &lt; slidingWindow when
     * slidingWindow &gt; 0); its own key must have been appended at slots[b] before.
     */
    void decodeAttention(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor cacheMask, Tensor slots,
                         int heads, int kvHeads, int slidingWindow);

    /**
     * Picks one token per row of logits [B, V] into tokens I32 [B] (see {@link SamplingParams}).
     * A row with finished[b] != 0 gets padId; a row that picks one of eosIds gets finished[b] = 1.
     * Draw number steps[b] of sequence seqIds[b] uses {@link CounterRng#uniform}(seed, seqIds[b],
     * steps[b]) = u: with z = logits / T, kept tokens, in ascending id order, have weights
     * w_j = exp(z_j - max(z)) and the pick is the first j whose running sum of w exceeds
     * u * sum(w) (the last kept token if none does); the CPU backend sums in double. finished,
     * seqIds, steps I32 [B].
     */
    void sample(Tensor tokens, Tensor logits, Tensor finished, Tensor seqIds, Tensor steps,
                long seed, SamplingParams params, int[] eosIds, int padId);

    /**
     * Returns a runnable doing what {@code step} does. A backend may record the ops of the first
     * run and replay the recording afterwards (CUDA graphs), so {@code step} must only call ops on
     * tensors allocated before, must not allocate, free, upload or download, and must issue the
     * same ops with the same arguments every time. The CPU backend returns {@code step} itself.
     */
    default Runnable capturable(Runnable step) {
        return step;
    }

    /**
     * Releases what recording {@code step} (a runnable {@link #capturable} returned) holds: the CUDA
     * backend's graph. Call it when the tensors the step uses are freed; the step must not run
     * afterwards. The CPU backend holds nothing.
     */
    default void releaseCaptured(Runnable step) {
    }

    /** Releases every resource of the backend (threads, device memory). */
    @Override
    void close();
}
