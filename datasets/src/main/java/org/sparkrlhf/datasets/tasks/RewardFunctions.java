package org.sparkrlhf.datasets.tasks;

import java.util.List;

/** The shipped reward functions by task name, for configs: "arithmetic", "digit-sort". */
public final class RewardFunctions {
    private RewardFunctions() {
    }

    public static final List<String> TASKS = List.of("arithmetic", "digit-sort");

    public static RewardFunction forTask(String task) {
        return switch (task) {
            case "arithmetic" -> new ArithmeticReward();
            case "digit-sort" -> new DigitSortReward();
            default -> throw new IllegalArgumentException("no reward function for task '" + task + "'; tasks are " + TASKS);
        };
    }
}
