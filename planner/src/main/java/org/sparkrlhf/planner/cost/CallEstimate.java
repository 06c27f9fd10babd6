package org.sparkrlhf.planner.cost;

/**
 * The cost of one call on one layout.
 *
 * @param seconds         wall time of the call (all replicas run at once)
 * @param microBatches    micro-batches per replica chosen for this estimate
 * @param recompute       whether activations are recomputed in the backward pass
 * @param transientBytes  per-device bytes the call needs while it runs, besides parameters
 *                        (activations, KV cache, logits, gathered ZeRO-3 buffers)
 * @param weightCopyBytes per-device bytes of a parameter copy in this layout, needed while the call runs
 *                        when its layout is not where the role's parameters live
 * @param homeStateBytes  per-device bytes that stay resident when this layout is the role's home:
 *                        the training state of a trained role, the weights of a frozen one
 */
public record CallEstimate(double seconds, int microBatches, boolean recompute, double transientBytes,
                           double weightCopyBytes, double homeStateBytes) {
}
