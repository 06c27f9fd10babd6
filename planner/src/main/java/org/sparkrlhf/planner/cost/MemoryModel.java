package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * Bytes a device holds, per kind of state (bf16 weights and activations, fp32 gradients and Adam), as
 * the engine allocates them (gpu-exec's {@code Activations} and {@code Generator}; MemoryLedgerAgreementTest
 * there compares these with the engine's ledger):
 * <ul>
 *   <li>weights: 2 bytes a parameter of the device's shard (the largest pipeline stage: the first holds
 *   the embedding, the last the final norm and head), divided by tp;</li>
 *   <li>training state: weights (2) + fp32 gradients (4) per shard parameter, fp32 master weights and
 *   Adam moments (12) sharded over the data-parallel replicas (a distributed optimizer / ZeRO-1); with
 *   ZeRO-3 all 18 bytes are sharded over every device;</li>
 *   <li>activations kept for the backward pass: per token and layer {@code 2(4h + (2q + 2kv + 3f)/tp)}
 *   bytes (norm inputs and outputs, q/k/v, attention output, SwiGLU gate/up/product) and fp32 norm
 *   statistics, for every micro-batch in flight, plus one layer's fp32 backward scratch; inference-only
 *   forwards keep one layer's buffers for a pass of at most {@link #MAX_TOKENS_PER_PASS} tokens;</li>
 *   <li>KV cache: {@code 2 (k and v) x kv x 2 bytes} per token, layer and sequence of the replica;</li>
 *   <li>logits: fp32 over the (vocab-parallel) vocabulary for the tokens of a micro-batch or pass.</li>
 * </ul>
 */
public final class MemoryModel {
    private MemoryModel() {
    }

    /** Parameters of pipeline stage {@code s}. */
    public static double stageParams(ModelSpec m, int pp, int s) {
        int from = ParallelStrategy.stageStart(m.layers(), pp, s);
        int to = ParallelStrategy.stageStart(m.layers(), pp, s + 1);
        double p = (double) (to - from) * m.layerParams();
        if (s == 0) {
            p += m.embeddingParams();
        }
        if (s == pp - 1) {
            p += m.hidden() + m.headParams();
            if (m.tieEmbeddings() && !m.valueHead() && pp > 1) {
                p += m.embeddingParams();
            }
        }
        return p;
    }

    /** Parameters held by the most loaded device of the layout. */
    public static double paramsPerDevice(ModelSpec m, ParallelStrategy s) {
        if (s.zero3()) {
            return Math.ceil((double) m.totalParams() / s.dp());
        }
        double max = 0;
        for (int st = 0; st < s.pp(); st++) {
            max = Math.max(max, stageParams(m, s.pp(), st));
        }
        return max / s.tp();
    }

    public static double weightBytes(ModelSpec m, ParallelStrategy s) {
        return 2.0 * paramsPerDevice(m, s);
    }

    public static double trainStateBytes(ModelSpec m, ParallelStrategy s) {
        double p = paramsPerDevice(m, s);
        if (s.zero3()) {
            return 18.0 * p;
        }
        return 6.0 * p + 12.0 * p / s.dp();
    }

    public static int layersPerStage(ModelSpec m, int pp) {
        return (m.layers() + pp - 1) / pp;
    }

    /**
     * Tokens one inference-only pass of the engine runs at most (a forward no backward follows, a
     * prefill): its rows are split into passes of at most this many tokens, one row at least. The
     * engine's default (gpu-exec's {@code LlamaModel.DEFAULT_MAX_TOKENS_PER_PASS}).
     */
    public static final int MAX_TOKENS_PER_PASS = 8192;

    /** Bytes of an activation element: bf16 (the engine stores activations and KV caches in its bf16 mode so). */
    static final double ACT = 2.0;
    /** Bytes of an fp32 element (norm statistics, log-sum-exps, logits, gradients) and of an int32 one (ids, masks). */
    static final double F32 = 4.0;

    /**
     * Bytes one layer keeps per token for the backward pass: the residual stream entering it, the
     * stream after attention, both norms' outputs (full width on every tensor rank: the engine has no
     * sequence parallelism), q and the attention output, k and v, SwiGLU gate/up/product (split over
     * tp) in bf16; both norms' rstd and the attention's log-sum-exp per head in fp32.
     */
    public static double activationBytesPerTokenLayer(ModelSpec m, int tp) {
        return ACT * (4.0 * m.hidden() + (2.0 * m.qDim() + 2.0 * m.kvDim() + 3.0 * m.intermediate()) / tp)
                + F32 * (2.0 + (double) m.heads() / tp);
    }

    /**
     * Bytes per token of a forward's buffers outside the layers: ids, mask, positions, targets (int32),
     * the stream leaving the stage (bf16), and on the last stage the final norm's rstd and the head's
     * per-token outputs (fp32: a causal LM's log-sum-exp, logprob and entropy, or a value); the final
     * norm's output (bf16) is a layer's norm output in size and counted with them.
     */
    static double trunkBytesPerToken(ModelSpec m) {
        return F32 * 4 + ACT * m.hidden() + F32 * (1 + (m.valueHead() ? 1 : 3));
    }

    /**
     * One layer's backward scratch per token (fp32 gradients, reused by every layer of a micro-batch):
     * the stream's and a norm's gradient (full width), q, k, v and attention-output gradients, gate,
     * up and product gradients.
     */
    static double backwardScratchBytesPerToken(ModelSpec m, int tp) {
        return F32 * (3.0 * m.hidden() + (2.0 * m.qDim() + 2.0 * m.kvDim() + 3.0 * m.intermediate()) / tp)
                + F32 * (m.valueHead() ? 1 : 2);
    }

    /**
     * Logits (fp32) for {@code tokens} tokens on the last stage: this rank's vocabulary part, the
     * gathered whole vocabulary when tp > 1, and as much again for their gradient.
     */
    public static double logitBytes(ModelSpec m, double tokens, int tp, boolean withGrad) {
        if (m.valueHead()) {
            return 0;
        }
        double perToken = (double) m.vocab() / tp + (tp > 1 ? m.vocab() : 0);
        return tokens * perToken * F32 * (withGrad ? 2 : 1);
    }

    /**
     * Activations of a training pass with {@code microBatches} micro-batches of {@code tokensPerMb}
     * tokens. One stage runs a micro-batch's forward and backward before the next; pipeline stages run
     * every forward, then every backward (GPipe), so every micro-batch's buffers are kept at once. With
     * recomputation only each layer's input is kept (the engine does not recompute yet: such plans are
     * estimates of what it would need).
     */
    public static double trainActivationBytes(ModelSpec m, ParallelStrategy s, double tokensPerMb, boolean recompute) {
        int inFlight = s.pp() > 1 ? s.microBatches() : 1;
        int layers = layersPerStage(m, s.pp());
        double perTokenLayer = activationBytesPerTokenLayer(m, s.tp());
        double kept = recompute
                ? inFlight * tokensPerMb * (layers * ACT * m.hidden() + ACT * m.hidden() + trunkBytesPerToken(m)) + tokensPerMb * perTokenLayer
                : inFlight * tokensPerMb * (layers * perTokenLayer + ACT * m.hidden() + trunkBytesPerToken(m));
        double logits = inFlight * logitBytes(m, tokensPerMb, s.tp(), false) + logitBytes(m, tokensPerMb, s.tp(), false);
        double scratch = tokensPerMb * backwardScratchBytesPerToken(m, s.tp());
        double gathered = s.zero3() ? 2 * 2.0 * m.layerParams() + 2.0 * Math.max(m.embeddingParams(), m.headParams()) : 0;
        return kept + logits + scratch + gathered;
    }

    /** Tokens of one pass of an inference-only forward over {@code tokens} tokens of sequences of {@code seqLen}. */
    static double passTokens(double tokens, int seqLen) {
        double rows = Math.max(1, Math.floor((double) MAX_TOKENS_PER_PASS / Math.max(1, seqLen)));
        return Math.min(tokens, rows * seqLen);
    }

    /**
     * Transient bytes of a forward-only pass over a micro-batch of {@code tokensPerMb} tokens of
     * sequences of {@code seqLen}: the engine runs it in passes of at most {@link #MAX_TOKENS_PER_PASS}
     * tokens, each keeping one layer's buffers (shared by the layers; two residual streams
     * alternate), the final norm's output and the logits. One stage runs its passes one after the
     * other; pipeline stages keep every pass of every micro-batch (each its own buffers, so that the
     * stages overlap).
     */
    public static double inferenceActivationBytes(ModelSpec m, ParallelStrategy s, double tokensPerMb, int seqLen) {
        double pass = s.pp() > 1 ? tokensPerMb * s.microBatches() : passTokens(tokensPerMb, seqLen);
        double work = pass * (activationBytesPerTokenLayer(m, s.tp()) + ACT * m.hidden() + trunkBytesPerToken(m));
        double logits = logitBytes(m, pass, s.tp(), false);
        double gathered = s.zero3() ? 2 * 2.0 * m.layerParams() + 2.0 * Math.max(m.embeddingParams(), m.headParams()) : 0;
        return work + logits + gathered;
    }

    /** KV cache of a replica decoding {@code sequences} sequences up to {@code length} tokens (bf16 keys and values, an int32 mask). */
    public static double kvCacheBytes(ModelSpec m, ParallelStrategy s, double sequences, int length) {
        return sequences * length * (2.0 * ACT * m.kvDim() * layersPerStage(m, s.pp()) / s.tp() + F32);
    }

    /**
     * Bytes of a generation over {@code sequences} prompts of {@code promptLen} tokens decoding up to
     * {@code seqLen} tokens: the KV cache; the decode step's buffers per sequence (a layer's bf16
     * buffers, the last stage's logits, int32 state and the generated tokens); and the prefill, in
     * passes of at most {@link #MAX_TOKENS_PER_PASS} tokens keeping one layer's buffers and no logits.
     */
    public static double generateActivationBytes(ModelSpec m, ParallelStrategy s, double sequences, int promptLen, int seqLen) {
        double kv = kvCacheBytes(m, s, sequences, seqLen);
        // per sequence: x, ln, h, lnf (bf16); q, att; k, v; gate, up, swi; rstd (fp32); eight int32 slots of state; its tokens
        double step = sequences * (ACT * (4.0 * m.hidden() + (2.0 * m.qDim() + 2.0 * m.kvDim() + 3.0 * m.intermediate()) / s.tp())
                + F32 * 9 + F32 * (seqLen - promptLen)) + logitBytes(m, sequences, s.tp(), false);
        // a prefill pass: one layer's buffers, the second residual stream, ids/mask/positions/targets, the final norm's
        // output and rstd; per row its last position's hidden state (fp32) and two int32 indices
        double pass = passTokens(sequences * promptLen, promptLen);
        double prefill = pass * (activationBytesPerTokenLayer(m, s.tp()) + ACT * m.hidden() + F32 * 4 + ACT * m.hidden() + F32)
                + pass / promptLen * F32 * (m.hidden() + 2);
        double gathered = s.zero3() ? 2 * 2.0 * m.layerParams() + 2.0 * Math.max(m.embeddingParams(), m.headParams()) : 0;
        return kv + step + prefill + gathered;
    }

    /**
     * Bytes of one S3D draft training step (gpu-exec's {@code S3dLoss} and {@code S3dTrainer}) over
     * {@code examples} rows of {@code seqLen} tokens, each ending in {@code draftTokens} masks: every
     * layer's buffers kept for the backward (the step runs a whole model's trunk over the rows) and one
     * layer's backward scratch, as a training pass of one micro-batch; over the mask rows only, the
     * fp32 logits and their gradient, the masks' inputs, their scratch, the final norm's output and its
     * gradient, the inputs' gradient (fp32 [masks, hidden] each), the rows passing the skipped layers
     * (the last context token and the masks: their scratch), four int32 index tensors and three fp32
     * per-mask figures; the mask embeddings' value, gradient and AdamW moments (fp32 [k, hidden] each).
     */
    public static double draftTrainActivationBytes(ModelSpec m, double examples, int seqLen, int draftTokens) {
        double tokens = examples * seqLen;
        double masks = examples * draftTokens;
        double bypass = examples * (draftTokens + 1);
        double kept = tokens * (m.layers() * activationBytesPerTokenLayer(m, 1) + ACT * m.hidden() + trunkBytesPerToken(m));
        double scratch = tokens * backwardScratchBytesPerToken(m, 1);
        double maskRows = logitBytes(m, masks, 1, true) + F32 * (5.0 * masks + bypass) * m.hidden()
                + F32 * (3.0 * masks + bypass) + F32 * 3.0 * masks;
        double draft = 4.0 * F32 * draftTokens * m.hidden();
        return kept + scratch + maskRows + draft;
    }
}
