package org.sparkrlhf.planner.graph;

/**
 * What a model function call does with its model: decode new tokens, score tokens, take optimizer
 * steps on its weights, or take optimizer steps on a speculative draft's few parameters of its own
 * (S3D's mask embeddings) through the frozen weights: the call reads the weights like an inference
 * call (it needs no training state and leaves the model's version as it is) and pays a forward and
 * an input-gradient backward per step.
 */
public enum CallKind {
    GENERATE,
    INFERENCE,
    TRAIN,
    DRAFT_TRAIN
}
