package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.PromptRow;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Sorting digits: "Sort the digits 4 1 9 3 in ascending order." -> "1 3 4 9". Small enough for a
 * tiny model to learn, with one right answer. One seed per problem, as {@link ArithmeticTask}.
 * Levels: 1 is 3 digits, 2 is 4 or 5, 3 is 6 to 8. The group is "digits-N".
 */
public final class DigitSortTask {
    private DigitSortTask() {
    }

    public static PromptRow problem(long seed, List<Integer> levels) {
        SplittableRandom rng = new SplittableRandom(seed);
        int level = levels.get(rng.nextInt(levels.size()));
        int n = switch (level) {
            case 1 -> 3;
            case 2 -> 4 + rng.nextInt(2);
            case 3 -> 6 + rng.nextInt(3);
            default -> throw new IllegalArgumentException("digit-sort level " + level + " does not exist; levels are 1, 2, 3");
        };
        int[] digits = new int[n];
        for (int i = 0; i < n; i++) digits[i] = rng.nextInt(10);
        int[] sorted = digits.clone();
        Arrays.sort(sorted);
        return PromptRow.text("sort-" + seed, "Sort the digits " + spaced(digits) + " in ascending order.",
                spaced(sorted), "digits-" + n);
    }

    /** As {@link ArithmeticTask#generate}: seeds from firstSeed, no question twice, none of {@code exclude}. */
    public static List<PromptRow> generate(long firstSeed, int count, List<Integer> levels, Set<String> exclude) {
        return DistinctQuestions.draw(firstSeed, count, levels, exclude, seed -> problem(seed, levels), PromptRow::prompt);
    }

    private static String spaced(int[] digits) {
        StringBuilder b = new StringBuilder();
        for (int d : digits) b.append(b.length() == 0 ? "" : " ").append(d);
        return b.toString();
    }
}
