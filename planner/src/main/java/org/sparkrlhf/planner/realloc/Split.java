package org.sparkrlhf.planner.realloc;

/** How tensor parallelism cuts a parameter. */
public enum Split {
    /** Output rows cut into tp contiguous ranges (q/k/v by head groups, gate/up, biases of q/k/v). */
    ROWS,
    /** Input columns cut into tp contiguous ranges (o_proj, down_proj). */
    COLUMNS,
    /** Vocabulary rows cut into tp ranges (embed_tokens, lm_head). */
    VOCAB_ROWS,
    /** Whole on every tensor rank (norms, a value head). */
    REPLICATED
}
