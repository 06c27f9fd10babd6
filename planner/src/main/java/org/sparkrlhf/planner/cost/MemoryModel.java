package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.mesh.ParallelStrategy;
import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * Bytes a device holds, per kind of state (bf16 weights and activations, fp32 gradients and Adam):
 * <ul>
 *   <li>weights: 2 bytes a parameter of the device's shard (the largest pipeline stage: the first holds
 *   the embedding, the last the final norm and head), divided by tp;</li>
 *   <li>training state: weights (2) + fp32 gradients (4) per shard parameter, fp32 master weights and
 *   Adam moments (12) sharded over the data-parallel replicas (a distributed optimizer / ZeRO-1); with
 *   ZeRO-3 all 18 bytes are sharded over every device;</li>
 *   <li>activations kept for the backward pass: per token and layer {@code 2(6h + 2 kv + 3f)/tp} bytes
 *   (norm inputs and outputs, q/k/v, attention output, SwiGLU gate/up/product; sequence parallel), for
 *   the micro-batches in flight in a 1F1B pipeline; with recomputation only each layer's input;</li>
 *   <li>KV cache: {@code 2 (k and v) x kv x 2 bytes} per token, layer and sequence of the replica;</li>
 *   <li>logits: fp32 over the (vocab-parallel) vocabulary for the tokens of a micro-batch.</li>
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

    public static double activationBytesPerTokenLayer(ModelSpec m, int tp) {
        return 2.0 * (6.0 * m.hidden() + 2.0 * m.kvDim() + 3.0 * m.intermediate()) / tp;
    }

    /** Logits and their gradient (fp32) for {@code tokens} tokens on the last stage. */
    public static double logitBytes(ModelSpec m, double tokens, int tp, boolean withGrad) {
        if (m.valueHead()) {
            return 0;
        }
        return tokens * ((double) m.vocab() / tp) * 4.0 * (withGrad ? 2 : 1);
    }

    /** Activations of a training pass with {@code microBatches} micro-batches of {@code tokensPerMb} tokens. */
    public static double trainActivationBytes(ModelSpec m, ParallelStrategy s, double tokensPerMb, boolean recompute) {
        int inFlight = Math.min(s.microBatches(), s.pp());
        int layers = layersPerStage(m, s.pp());
        double perTokenLayer = activationBytesPerTokenLayer(m, s.tp());
        double kept = recompute
                ? inFlight * tokensPerMb * layers * 2.0 * m.hidden() / s.tp() + tokensPerMb * perTokenLayer
                : inFlight * tokensPerMb * layers * perTokenLayer;
        double logits = logitBytes(m, tokensPerMb, s.tp(), true);
        double gathered = s.zero3() ? 2 * 2.0 * m.layerParams() + 2.0 * Math.max(m.embeddingParams(), m.headParams()) : 0;
        return kept + logits + gathered;
    }

    /** Transient bytes of a forward-only pass over a micro-batch of {@code tokensPerMb} tokens. */
    public static double inferenceActivationBytes(ModelSpec m, ParallelStrategy s, double tokensPerMb) {
        double work = tokensPerMb * 2.0 * (4.0 * m.hidden() + 3.0 * m.intermediate()) / s.tp();
        double logits = logitBytes(m, tokensPerMb, s.tp(), false) * 2;
        double gathered = s.zero3() ? 2 * 2.0 * m.layerParams() + 2.0 * Math.max(m.embeddingParams(), m.headParams()) : 0;
        return work + logits + gathered;
    }

    /** KV cache of a replica decoding {@code sequences} sequences up to {@code length} tokens. */
    public static double kvCacheBytes(ModelSpec m, ParallelStrategy s, double sequences, int length) {
        return sequences * length * 2.0 * m.kvDim() * 2.0 * layersPerStage(m, s.pp()) / s.tp();
    }
}
