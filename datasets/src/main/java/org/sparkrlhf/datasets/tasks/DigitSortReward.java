package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.PromptRow;

import java.util.Optional;

/** The digit-sort task's reward: correct, wrong, or format (no digits to read). */
public final class DigitSortReward implements RewardFunction {
    private static final long serialVersionUID = 1L;
    private final double correct;
    private final double wrong;
    private final double format;

    public DigitSortReward(double correct, double wrong, double format) {
        this.correct = correct;
        this.wrong = wrong;
        this.format = format;
    }

    public DigitSortReward() {
        this(1.0, 0.0, 0.0);
    }

    @Override
    public Reward score(PromptRow prompt, String response) {
        if (prompt.reference() == null) {
            throw new IllegalArgumentException("prompt " + prompt.id() + " has no reference answer to check against");
        }
        Optional<String> answer = DigitSortAnswer.extract(response);
        if (answer.isEmpty()) return new Reward(format, Reward.FORMAT);
        return answer.get().equals(prompt.reference().replaceAll("[ ,]", ""))
                ? new Reward(correct, Reward.CORRECT) : new Reward(wrong, Reward.WRONG);
    }
}
