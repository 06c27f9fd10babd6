package org.sparkrlhf.gpuexec.cuda;

/** What a piece of GPU memory holds, for the per-model report the planner's memory model is checked against. */
public enum MemoryKind {
    WEIGHTS, GRADIENTS, OPTIMIZER, ACTIVATIONS, KV_CACHE, WORKSPACE
}
