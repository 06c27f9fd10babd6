package org.sparkrlhf.planner.graph;

/** What a model function call does with its model: decode new tokens, score tokens, or take optimizer steps. */
public enum CallKind {
    GENERATE,
    INFERENCE,
    TRAIN
}
