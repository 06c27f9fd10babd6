package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.PromptRow;

import java.math.BigDecimal;
import java.util.Optional;

/**
 * The arithmetic task's reward: {@code correct} when the response's final answer equals the
 * prompt's reference, {@code wrong} for another number, {@code format} when no answer can be read.
 */
public final class ArithmeticReward implements RewardFunction {
    private static final long serialVersionUID = 1L;
    private final double correct;
    private final double wrong;
    private final double format;

    public ArithmeticReward(double correct, double wrong, double format) {
        this.correct = correct;
        this.wrong = wrong;
        this.format = format;
    }

    /** 1 for correct, 0 otherwise. */
    public ArithmeticReward() {
        this(1.0, 0.0, 0.0);
    }

    @Override
    public Reward score(PromptRow prompt, String response) {
        if (prompt.reference() == null) {
            throw new IllegalArgumentException("prompt " + prompt.id() + " has no reference answer to check against");
        }
        BigDecimal expected = new BigDecimal(prompt.reference().strip());
        Optional<BigDecimal> answer = ArithmeticAnswer.extract(response);
        if (answer.isEmpty()) return new Reward(format, Reward.FORMAT);
        return answer.get().compareTo(expected) == 0 ? new Reward(correct, Reward.CORRECT) : new Reward(wrong, Reward.WRONG);
    }
}
