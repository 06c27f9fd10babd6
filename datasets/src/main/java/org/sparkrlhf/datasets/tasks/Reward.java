package org.sparkrlhf.datasets.tasks;

import java.io.Serializable;

/**
 * A reward function's verdict on one response: the reward, and a word for what it found
 * ({@code correct}, {@code wrong}, {@code format} when no answer could be read).
 */
public record Reward(double value, String detail) implements Serializable {
    public static final String CORRECT = "correct";
    public static final String WRONG = "wrong";
    public static final String FORMAT = "format";
}
