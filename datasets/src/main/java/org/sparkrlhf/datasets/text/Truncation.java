package org.sparkrlhf.datasets.text;

/** What to do with a prompt longer than the maximum prompt length. */
public enum Truncation {
    /** Keep the last tokens: the end of a prompt holds the question and the generation prompt (TRL's default for prompts). */
    LEFT,
    /** Keep the first tokens. */
    RIGHT,
    /** Refuse: tokenizing a dataset with an over-long prompt fails, naming the prompts. */
    FAIL
}
