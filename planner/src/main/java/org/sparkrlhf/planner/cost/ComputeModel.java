package org.sparkrlhf.planner.cost;

import org.sparkrlhf.planner.spec.GpuSpec;
import org.sparkrlhf.planner.spec.ModelSpec;

/**
 * Compute time of one device's share of a layer or of the output head: from the profile table when it
 * has the op, else a roofline, {@code max(FLOPs / achieved FLOP/s, bytes / achieved bandwidth)} plus a
 * fixed per-layer overhead. Tensor parallelism divides FLOPs, weights and (with sequence parallelism)
 * activation traffic by {@code tp}. Communication is not included here.
 */
public final class ComputeModel {
    private final GpuSpec gpu;
    private final CostConstants k;
    private final ProfileTable profile;

    public ComputeModel(GpuSpec gpu, CostConstants k, ProfileTable profile) {
        this.gpu = gpu;
        this.k = k;
        this.profile = profile;
    }

    private double roofline(double gemmFlops, double attnFlops, double bytes) {
        double compute = gemmFlops / (gpu.peakFlops() * k.gemmEfficiency())
                + attnFlops / (gpu.peakFlops() * k.attentionEfficiency());
        double memory = bytes / (gpu.memoryBandwidth() * k.memoryEfficiency());
        return Math.max(compute, memory);
    }

    private double fromProfile(ModelSpec m, ProfileTable.Op op, int tp, double tokens, double context) {
        return profile.lookup(m.name(), gpu.name(), op, tp, tokens, context);
    }

    /** Forward of one decoder layer over {@code tokens} tokens of sequences {@code seqLen} long (causal). */
    public double layerForward(ModelSpec m, double tokens, double seqLen, int tp) {
        double p = fromProfile(m, ProfileTable.Op.LAYER_FWD, tp, tokens, seqLen);
        if (!Double.isNaN(p)) {
            return p;
        }
        double gemm = 2.0 * m.layerMatrixParams() * tokens / tp;
        double attn = 4.0 * m.qDim() * tokens * (seqLen + 1) / 2.0 / tp;
        double bytes = 2.0 * m.layerParams() / tp + k.activationTraffic() * tokens * m.hidden() * 2.0 / tp;
        return roofline(gemm, attn, bytes) + k.layerOverhead();
    }

    /** Backward of one decoder layer: twice the forward FLOPs; weights read and gradients written. */
    public double layerBackward(ModelSpec m, double tokens, double seqLen, int tp) {
        double p = fromProfile(m, ProfileTable.Op.LAYER_BWD, tp, tokens, seqLen);
        if (!Double.isNaN(p)) {
            return p;
        }
        double gemm = 4.0 * m.layerMatrixParams() * tokens / tp;
        double attn = 8.0 * m.qDim() * tokens * (seqLen + 1) / 2.0 / tp;
        double bytes = 2.0 * 2.0 * m.layerParams() / tp + 2.0 * k.activationTraffic() * tokens * m.hidden() * 2.0 / tp;
        return roofline(gemm, attn, bytes) + 2 * k.layerOverhead();
    }

    /** One decoding step of one layer for {@code batch} sequences with {@code context} cached positions. */
    public double layerDecode(ModelSpec m, double batch, double context, int tp) {
        double p = fromProfile(m, ProfileTable.Op.LAYER_DECODE, tp, batch, context);
        if (!Double.isNaN(p)) {
            return p;
        }
        double gemm = 2.0 * m.layerMatrixParams() * batch / tp;
        double attn = 4.0 * m.qDim() * batch * context / tp;
        double kvBytes = batch * context * 2.0 * m.kvDim() * 2.0 / tp;
        double bytes = 2.0 * m.layerParams() / tp + kvBytes + k.activationTraffic() * batch * m.hidden() * 2.0 / tp;
        return roofline(gemm, attn, bytes) + k.decodeLayerOverhead();
    }

    /** Output head (and the fp32 log-softmax over it) for {@code tokens} tokens. */
    public double headForward(ModelSpec m, double tokens, int tp) {
        // a critic's or reward model's value head is a [1, hidden] projection, no vocabulary
        double p = fromProfile(m, m.valueHead() ? ProfileTable.Op.VALUE_HEAD_FWD : ProfileTable.Op.HEAD_FWD, tp, tokens, 0);
        if (!Double.isNaN(p)) {
            return p;
        }
        int out = m.outputDim();
        double gemm = 2.0 * m.hidden() * out * tokens / tp;
        double bytes = 2.0 * m.hidden() * out / tp + tokens * (double) out / tp * 4.0 * 3.0;
        return roofline(gemm, 0, bytes) + k.layerOverhead();
    }

    /**
     * What a decoding step of {@code batch} sequences costs beyond its decoder layers: the profile's
     * {@code head_decode} (the embedding, the head, sampling, the stop check, as timed), else the head's
     * forward over the batch.
     */
    public double headDecode(ModelSpec m, double batch, int tp) {
        double p = fromProfile(m, ProfileTable.Op.HEAD_DECODE, tp, batch, 0);
        return Double.isNaN(p) ? headForward(m, batch, tp) : p;
    }

    public double headBackward(ModelSpec m, double tokens, int tp) {
        double p = fromProfile(m, m.valueHead() ? ProfileTable.Op.VALUE_HEAD_BWD : ProfileTable.Op.HEAD_BWD, tp, tokens, 0);
        if (!Double.isNaN(p)) {
            return p;
        }
        int out = m.outputDim();
        double gemm = 4.0 * m.hidden() * out * tokens / tp;
        double bytes = 4.0 * m.hidden() * out / tp + tokens * (double) out / tp * 4.0 * 3.0;
        return roofline(gemm, 0, bytes) + 2 * k.layerOverhead();
    }

    /** A memory-bound pass over {@code bytes} (optimizer step, local copies). */
    public double memoryPass(double bytes) {
        return bytes / (gpu.memoryBandwidth() * k.memoryEfficiency());
    }
}
